//! Cilium's reserved identities: fixed numbers for traffic that is not from a
//! labelled endpoint. Their labels are `reserved:<name>`, so selectors such as
//! `{"matchLabels": {"reserved:host": ""}}` select them like any other identity.

use std::collections::BTreeMap;

use crate::labels::Labels;

/// Identity 0 in a policy map key means "any identity".
pub const IDENTITY_ANY: u32 = 0;
pub const IDENTITY_HOST: u32 = 1;
pub const IDENTITY_WORLD: u32 = 2;
pub const IDENTITY_UNMANAGED: u32 = 3;
pub const IDENTITY_HEALTH: u32 = 4;
pub const IDENTITY_INIT: u32 = 5;
pub const IDENTITY_REMOTE_NODE: u32 = 6;
pub const IDENTITY_KUBE_APISERVER: u32 = 7;
/// The outside of the cluster over IPv6 (Cilium's dual-stack `world-ipv6`).
pub const IDENTITY_WORLD_IPV6: u32 = 10;

/// The one table of reserved identities; the identity crate allocates from it.
/// Cilium's 8 (`ingress`) and 9 (`world-ipv4`) are not allocated: there is
/// no ingress proxy identity yet, and the IPv4 outside keeps 2 (`world`),
/// while the IPv6 outside is 10 (`world-ipv6`), as in a dual-stack Cilium
/// (see `entities`).
const RESERVED: [(u32, &str); 8] = [
    (IDENTITY_HOST, "host"),
    (IDENTITY_WORLD, "world"),
    (IDENTITY_UNMANAGED, "unmanaged"),
    (IDENTITY_HEALTH, "health"),
    (IDENTITY_INIT, "init"),
    (IDENTITY_REMOTE_NODE, "remote-node"),
    (IDENTITY_KUBE_APISERVER, "kube-apiserver"),
    (IDENTITY_WORLD_IPV6, "world-ipv6"),
];

/// `(id, name)` of every reserved identity, in id order.
pub fn all() -> impl Iterator<Item = (u32, &'static str)> {
    RESERVED.iter().copied()
}

/// The name of a reserved identity (`1` → `host`).
pub fn reserved_name(identity: u32) -> Option<&'static str> {
    RESERVED
        .iter()
        .find(|(id, _)| *id == identity)
        .map(|(_, name)| *name)
}

/// The number of a reserved identity by name (`world` → `2`).
pub fn reserved_identity(name: &str) -> Option<u32> {
    RESERVED
        .iter()
        .find(|(_, reserved)| *reserved == name)
        .map(|(id, _)| *id)
}

/// Every reserved identity with its label set.
pub fn reserved_identities() -> BTreeMap<u32, Labels> {
    RESERVED
        .iter()
        .map(|(id, name)| (*id, Labels::reserved(name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_agree() {
        assert_eq!(reserved_name(1), Some("host"));
        assert_eq!(reserved_identity("remote-node"), Some(6));
        assert_eq!(reserved_name(7), Some("kube-apiserver"));
        assert_eq!(reserved_name(8), None);
        let all = reserved_identities();
        assert_eq!(all.len(), 8);
        assert_eq!(all[&2].to_strings(), vec!["reserved:world"]);
        assert_eq!(reserved_identity("world-ipv6"), Some(10));
    }
}
