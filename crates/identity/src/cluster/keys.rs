//! Where cluster identities live in the kvstore, laid out as Cilium's kvstore
//! allocator does:
//!
//! - `cilium/state/identities/v1/id/<id>` → labels key (the master key, no lease)
//! - `cilium/state/identities/v1/value/<labels key>/<node>` → id (one per node that
//!   uses the identity, under that node's lease)
//! - `cilium/state/identities/v1/locks/<labels key>` → node (held while allocating)
//!
//! The labels key is Cilium's sorted label list: `source:key=value;` per label, sorted
//! by key then source (the `=` and `;` are always written).

use std::str::FromStr;

use policy::labels::{Label, Labels};

pub const BASE: &str = "cilium/state/identities/v1/";
pub const ID_PREFIX: &str = "cilium/state/identities/v1/id/";
pub const VALUE_PREFIX: &str = "cilium/state/identities/v1/value/";
pub const LOCK_PREFIX: &str = "cilium/state/identities/v1/locks/";

/// The labels as Cilium writes them into the kvstore.
pub fn labels_key(labels: &Labels) -> String {
    let mut sorted: Vec<&Label> = labels.iter().collect();
    sorted.sort_by(|a, b| (&a.key, &a.source).cmp(&(&b.key, &b.source)));
    sorted
        .iter()
        .map(|label| format!("{}:{}={};", label.source, label.key, label.value))
        .collect()
}

/// Reads a labels key back; `None` if any label in it is malformed.
pub fn parse_labels_key(text: &str) -> Option<Labels> {
    text.split(';')
        .filter(|part| !part.is_empty())
        .map(|part| Label::from_str(part).ok())
        .collect()
}

pub fn master_key(id: u32) -> String {
    format!("{ID_PREFIX}{id}")
}

/// The id a master key names; `None` for anything else under the prefix.
pub fn parse_master_key(key: &str) -> Option<u32> {
    key.strip_prefix(ID_PREFIX)?.parse().ok()
}

/// All nodes' reference keys of one label set end up under this prefix.
pub fn value_prefix(labels_key: &str) -> String {
    format!("{VALUE_PREFIX}{labels_key}/")
}

pub fn value_key(labels_key: &str, node: &str) -> String {
    format!("{VALUE_PREFIX}{labels_key}/{node}")
}

/// `(labels key, node)` of a reference key. Node names never contain `/`, so the
/// node is what follows the last one.
pub fn parse_value_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(VALUE_PREFIX)?.rsplit_once('/')
}

pub fn lock_key(labels_key: &str) -> String {
    format!("{LOCK_PREFIX}{labels_key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(list: &[&str]) -> Labels {
        Labels::parse_all(list).expect("valid test labels")
    }

    #[test]
    fn labels_key_is_ciliums_sorted_list() {
        let set = labels(&["k8s:io.kubernetes.pod.namespace=default", "k8s:app=web"]);
        assert_eq!(
            labels_key(&set),
            "k8s:app=web;k8s:io.kubernetes.pod.namespace=default;"
        );
        // Sorted by key first: the source only breaks ties.
        let set = labels(&["k8s:b=1", "container:a=2", "any:a=1"]);
        assert_eq!(labels_key(&set), "any:a=1;container:a=2;k8s:b=1;");
        assert_eq!(parse_labels_key(&labels_key(&set)), Some(set));
    }

    #[test]
    fn labels_key_round_trips_odd_values() {
        let set = labels(&["k8s:app.kubernetes.io/name=a:b", "reserved:host"]);
        assert_eq!(parse_labels_key(&labels_key(&set)), Some(set));
    }

    #[test]
    fn keys_parse_back() {
        assert_eq!(master_key(300), "cilium/state/identities/v1/id/300");
        assert_eq!(parse_master_key(&master_key(300)), Some(300));
        assert_eq!(parse_master_key("cilium/state/identities/v1/id/x"), None);
        let key = value_key("k8s:app.kubernetes.io/name=web;", "node-1");
        assert!(key.starts_with(&value_prefix("k8s:app.kubernetes.io/name=web;")));
        assert_eq!(
            parse_value_key(&key),
            Some(("k8s:app.kubernetes.io/name=web;", "node-1"))
        );
    }
}
