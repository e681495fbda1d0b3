//! Is a split of connections over backends what the weights promise?
//! Pearson's chi-square against the expected shares, with thresholds that
//! a fair balancer exceeds with probability 1e-6 only.

use std::collections::BTreeMap;

/// Chi-square critical values at p = 1e-6 by degrees of freedom (1, 2).
const CRITICAL_P1E6: [f64; 2] = [23.93, 27.63];

/// Fails unless `counts` over `backends` (with relative `weights`) fit the
/// expected shares, and every backend got something.
pub fn check_split(
    counts: &BTreeMap<String, usize>,
    backends: &[&str],
    weights: &[f64],
) -> Result<f64, String> {
    let stray: Vec<_> = counts
        .keys()
        .filter(|k| !backends.contains(&k.as_str()))
        .collect();
    if !stray.is_empty() {
        return Err(format!(
            "answers from unexpected backends {stray:?}: {counts:?}"
        ));
    }
    if let Some(missing) = backends.iter().find(|b| !counts.contains_key(**b)) {
        return Err(format!("{missing} got no connection: {counts:?}"));
    }
    let n: usize = counts.values().sum();
    let total: f64 = weights.iter().sum();
    let chi2: f64 = backends
        .iter()
        .zip(weights)
        .map(|(b, w)| {
            let expected = n as f64 * w / total;
            let seen = counts.get(*b).copied().unwrap_or(0) as f64;
            (seen - expected).powi(2) / expected
        })
        .sum();
    let critical = CRITICAL_P1E6[backends.len().clamp(2, 3) - 2];
    if chi2 > critical {
        return Err(format!(
            "split {counts:?} is too far from weights {weights:?}: chi-square {chi2:.1} > {critical}"
        ));
    }
    Ok(chi2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn fair_passes_and_broken_fails() {
        let abc = ["a", "b", "c"];
        let even = [1.0, 1.0, 1.0];
        assert!(check_split(&counts(&[("a", 95), ("b", 110), ("c", 95)]), &abc, &even).is_ok());
        assert!(check_split(&counts(&[("a", 150), ("b", 150)]), &abc, &even).is_err());
        assert!(check_split(&counts(&[("a", 160), ("b", 80), ("c", 60)]), &abc, &even).is_err());
        assert!(check_split(&counts(&[("a", 50), ("b", 150)]), &["a", "b"], &[1.0, 3.0]).is_ok());
        assert!(check_split(&counts(&[("a", 100), ("b", 100)]), &["a", "b"], &[1.0, 3.0]).is_err());
    }
}
