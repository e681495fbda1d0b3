//! Medians, quantiles and ratios over rounds. Three benches pick the
//! middle of an even count in three ways; each keeps its own below so that
//! its pages stay comparable with earlier runs.

/// The median; for an even count the mean of the two middle values. NaN
/// when empty.
pub fn median(values: &[f64]) -> f64 {
    let v = sorted(values);
    if v.is_empty() {
        return f64::NAN;
    }
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The `q` quantile (0..=1) as the value at the rounded position
/// `(n − 1)·q` of the sorted values: the upper middle for an even count.
/// NaN when empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let v = sorted(values);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The `q` quantile (0..=1) by nearest rank: the ⌈q·n⌉-th smallest value,
/// the lower middle for an even count. NaN when empty.
pub fn nearest_rank(values: &[f64], q: f64) -> f64 {
    let v = sorted(values);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// (smallest, largest); (∞, −∞) when empty.
pub fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// `a(round) / b(round)` for every round in which both were measured:
/// load from other work on the machine drifts less within a round than
/// across rounds. `b` is floored so that a zero does not divide.
pub fn round_ratios(
    rounds: usize,
    a: impl Fn(usize) -> Option<f64>,
    b: impl Fn(usize) -> Option<f64>,
) -> Vec<f64> {
    (0..rounds)
        .filter_map(|round| Some(a(round)? / b(round)?.max(1e-9)))
        .collect()
}

/// How many times better `candidate` does than `reference`, so that above
/// 1 always means better: reference/candidate for a latency (lower is
/// better), candidate/reference for a rate.
pub fn advantage(candidate: f64, reference: f64, lower_is_better: bool) -> f64 {
    if lower_is_better {
        reference / candidate
    } else {
        candidate / reference
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn quantiles_by_rounded_position() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 51.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), 2.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        assert_eq!(nearest_rank(&[428.0, 100.0], 0.5), 100.0);
        assert_eq!(nearest_rank(&[428.0, 100.0], 0.99), 428.0);
        assert_eq!(nearest_rank(&[3.0, 1.0, 2.0], 1.0), 3.0);
        assert!(nearest_rank(&[], 0.5).is_nan());
    }

    #[test]
    fn ranges_and_ratios() {
        assert_eq!(min_max(&[2.0, 5.0, 1.0]), (1.0, 5.0));
        let a = [Some(10.0), Some(6.0), None];
        let b = [Some(5.0), Some(0.0), Some(1.0)];
        let ratios = round_ratios(3, |r| a[r], |r| b[r]);
        assert_eq!(ratios, vec![2.0, 6e9]);
        assert_eq!(advantage(10.0, 30.0, true), 3.0);
        assert_eq!(advantage(90.0, 100.0, false), 0.9);
    }
}
