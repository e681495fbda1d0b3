//! Reserved identities: fixed numbers with well-known meanings, the same as Cilium's.
//! Each carries the single label `reserved:<name>`.

use policy::labels::{Labels, SOURCE_RESERVED};

use crate::error::IdentityError;

/// Not a real identity: "not determined yet". Never handed out by the allocator.
pub const UNKNOWN: u32 = 0;
/// Endpoints whose labels are not known yet (an empty label set) get this identity.
pub use policy::reserved::IDENTITY_INIT as INIT;
pub use policy::reserved::{
    IDENTITY_HEALTH as HEALTH, IDENTITY_HOST as HOST, IDENTITY_KUBE_APISERVER as KUBE_APISERVER,
    IDENTITY_REMOTE_NODE as REMOTE_NODE, IDENTITY_UNMANAGED as UNMANAGED, IDENTITY_WORLD as WORLD,
};

/// First number of the cluster-local range handed out for ordinary label sets.
pub const MIN_ALLOCATED: u32 = 256;
/// Last number of the cluster-local range (16 bits; higher bits are for cluster id and scope).
pub const MAX_ALLOCATED: u32 = 65535;

/// Node-local identities (CIDR identities) have bit 24 set, as in Cilium: they never
/// leave the node, so they cannot collide with cluster-wide numbers.
pub const LOCAL_MIN: u32 = (1 << 24) | 1;
pub const LOCAL_MAX: u32 = (1 << 24) | 0x00ff_ffff;

/// `(id, name)` of every reserved identity that can be assigned, in id order.
pub fn all() -> impl Iterator<Item = (u32, &'static str)> {
    policy::reserved::all()
}

/// The name after `reserved:` for a reserved id, including `unknown` for 0.
pub fn name_of(id: u32) -> Option<&'static str> {
    if id == UNKNOWN {
        return Some("unknown");
    }
    policy::reserved::reserved_name(id)
}

/// The reserved id named `name` (the part after `reserved:`); `unknown` is not assignable.
pub fn id_of(name: &str) -> Option<u32> {
    policy::reserved::reserved_identity(name)
}

/// True for ids below the allocated range: they are fixed and never refcounted.
pub fn is_reserved(id: u32) -> bool {
    id < MIN_ALLOCATED
}

/// Decides whether a label set maps to a reserved identity.
///
/// `Ok(Some(id))` for a reserved identity, `Ok(None)` when the set needs an allocated
/// identity, and an error when reserved labels are mixed in a way that names no
/// reserved identity (we refuse to guess rather than merge unrelated peers).
pub fn reserved_for(labels: &Labels) -> Result<Option<u32>, IdentityError> {
    if labels.is_empty() {
        return Ok(Some(INIT));
    }
    let reserved_names: Vec<&str> = labels
        .iter()
        .filter(|l| l.source == SOURCE_RESERVED)
        .map(|l| l.key.as_str())
        .collect();
    if reserved_names.is_empty() {
        return Ok(None);
    }
    // As in Cilium, the host keeps the host identity whatever else it is labelled with
    // (e.g. `reserved:kube-apiserver` when the API server runs on this node).
    if reserved_names.contains(&"host") {
        return Ok(Some(HOST));
    }
    if let ([name], 1) = (reserved_names.as_slice(), labels.len()) {
        if let Some(id) = id_of(name) {
            return Ok(Some(id));
        }
    }
    Err(IdentityError::InvalidReservedLabels {
        labels: labels.to_strings().join(","),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(list: &[&str]) -> Labels {
        Labels::parse_all(list).expect("valid test labels")
    }

    #[test]
    fn every_reserved_name_maps_to_its_id() {
        for (id, name) in all() {
            assert_eq!(reserved_for(&Labels::reserved(name)).unwrap(), Some(id));
            assert_eq!(name_of(id), Some(name));
        }
        assert_eq!(name_of(UNKNOWN), Some("unknown"));
        assert_eq!(id_of("unknown"), None);
    }

    #[test]
    fn empty_set_is_init_and_plain_labels_need_allocation() {
        assert_eq!(reserved_for(&Labels::default()).unwrap(), Some(INIT));
        assert_eq!(reserved_for(&labels(&["k8s:app=web"])).unwrap(), None);
    }

    #[test]
    fn host_wins_over_other_labels() {
        let host = labels(&["reserved:host", "reserved:kube-apiserver"]);
        assert_eq!(reserved_for(&host).unwrap(), Some(HOST));
    }

    #[test]
    fn mixed_or_unknown_reserved_labels_are_rejected() {
        for bad in [
            &["reserved:world", "k8s:app=web"][..],
            &["reserved:health", "reserved:world"][..],
            &["reserved:unknown"][..],
            &["reserved:no-such-thing"][..],
        ] {
            let err = reserved_for(&labels(bad)).unwrap_err();
            assert!(
                matches!(err, IdentityError::InvalidReservedLabels { .. }),
                "{bad:?}"
            );
        }
    }
}
