//! `labelsSHA256` as Cilium's API reports it for an identity.

use policy::labels::Labels;
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of the label set in Cilium's kvstore form: labels sorted by
/// key (then source), each written `source:key=value;` (the `=` and the trailing `;`
/// are always present), concatenated. Same bytes as Cilium's `Labels.SortedList()`.
pub fn labels_sha256(labels: &Labels) -> String {
    let mut sorted: Vec<_> = labels.iter().collect();
    sorted.sort_by(|a, b| (&a.key, &a.source).cmp(&(&b.key, &b.source)));
    let mut hasher = Sha256::new();
    for label in sorted {
        hasher.update(format!("{}:{}={};", label.source, label.key, label.value));
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(list: &[&str]) -> Labels {
        Labels::parse_all(list).expect("valid test labels")
    }

    #[test]
    fn hashes_cilium_kvstore_form() {
        // sha256("k8s:app=web;")
        assert_eq!(
            labels_sha256(&labels(&["k8s:app=web"])),
            "d7733133299d1e288889f2837ba173f9d90e620d3019f7d357cc10f2ec3dcdd7"
        );
        // A label without a value still gets its `=`: sha256("reserved:host=;")
        assert_eq!(
            labels_sha256(&Labels::reserved("host")),
            "ccb27cb0f333d0e3b0145da7525570ab597d1488e1fc005e5d5286e5d578db89"
        );
    }

    #[test]
    fn sorts_by_key_not_by_source() {
        // sha256("k8s:a=2;container:b=1;")
        assert_eq!(
            labels_sha256(&labels(&["container:b=1", "k8s:a=2"])),
            "e16e55809e98894cf004ca5c8f564e81b52bc4e3b1d257a71b19423014c68901"
        );
    }
}
