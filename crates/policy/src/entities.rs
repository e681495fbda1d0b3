//! `fromEntities`/`toEntities`: named classes of peers that have no labels of
//! their own, each standing for a selector over identities (Cilium's
//! `EntitySelectorMapping`).
//!
//! `world-ipv4` and `world-ipv6` split `world` by family (Cilium: "traffic
//! external to the cluster, specifically an IPv4 [IPv6] endpoint, to
//! distinguish it from IPv6 [IPv4] in dual-stack mode"). A dual-stack Cilium
//! gives the outside reserved identities 9 (`reserved:world-ipv4`) and 10
//! (`reserved:world-ipv6`) and labels each CIDR identity with its family's
//! one; a single-stack Cilium keeps identity 2 (`reserved:world`) for the whole
//! outside, and `world` selects all three. Here the IPv6 outside is split out
//! as in dual stack: identity 10 and IPv6 CIDR identities carry
//! `reserved:world-ipv6` (what `::/0` and `world-ipv6` select), while the IPv4
//! outside keeps identity 2 and `reserved:world` (what `0.0.0.0/0` and
//! `world-ipv4` select) rather than Cilium's 9. `world` selects both families
//! and `cluster` neither.

use serde::{Deserialize, Serialize};

use crate::cidr_v6::WORLD_IPV6;
use crate::labels::SOURCE_RESERVED;
use crate::selector::{EndpointSelector, LabelSelectorRequirement, SelectorOperator};

/// A policy entity, spelled as in Cilium (`remote-node`, `kube-apiserver`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Entity {
    /// Every peer, inside or outside the cluster: the any identity (0).
    All,
    /// Outside the cluster over either family: `world-ipv4` and `world-ipv6`.
    World,
    /// Outside the cluster over IPv4: `reserved:world` (identity 2 and the
    /// IPv4 CIDR identities), what `0.0.0.0/0` selects.
    WorldIpv4,
    /// Outside the cluster over IPv6: `reserved:world-ipv6` (identity 10 and
    /// the IPv6 CIDR identities), what `::/0` selects.
    WorldIpv6,
    /// Every identity that is not outside the cluster (not world, not CIDR):
    /// endpoints, the host, remote nodes, health, init, unmanaged, kube-apiserver.
    Cluster,
    /// The local node.
    Host,
    /// Other nodes of the cluster.
    RemoteNode,
    /// Cilium's health endpoints.
    Health,
    /// Endpoints whose identity is not resolved yet.
    Init,
    /// Pods not managed by Cilium.
    Unmanaged,
    /// The Kubernetes API server.
    KubeApiserver,
    /// Selects nothing (a placeholder that never exists).
    None,
}

fn reserved(name: &str) -> EndpointSelector {
    EndpointSelector::from_match_labels([(format!("{SOURCE_RESERVED}:{name}"), "")])
}

impl Entity {
    /// The selectors this entity stands for (any of them selects): one but
    /// for `world`, which is both families' outside, as Cilium expands it.
    pub fn selectors(self) -> Vec<EndpointSelector> {
        match self {
            Entity::World => vec![reserved("world"), reserved(WORLD_IPV6)],
            other => vec![other.selector()],
        }
    }

    /// The selector of an entity that has one (`all` is the wildcard `{}`);
    /// `world`'s IPv4 half: use [`Entity::selectors`].
    pub fn selector(self) -> EndpointSelector {
        match self {
            Entity::All => EndpointSelector::wildcard(),
            Entity::World | Entity::WorldIpv4 => reserved("world"),
            Entity::WorldIpv6 => reserved(WORLD_IPV6),
            // World and CIDR identities carry `reserved:world` (IPv4) or
            // `reserved:world-ipv6`.
            Entity::Cluster => EndpointSelector::wildcard()
                .with_expression(LabelSelectorRequirement::new(
                    format!("{SOURCE_RESERVED}:world"),
                    SelectorOperator::DoesNotExist,
                    &[],
                ))
                .with_expression(LabelSelectorRequirement::new(
                    format!("{SOURCE_RESERVED}:{WORLD_IPV6}"),
                    SelectorOperator::DoesNotExist,
                    &[],
                )),
            Entity::Host => reserved("host"),
            Entity::RemoteNode => reserved("remote-node"),
            Entity::Health => reserved("health"),
            Entity::Init => reserved("init"),
            Entity::Unmanaged => reserved("unmanaged"),
            Entity::KubeApiserver => reserved("kube-apiserver"),
            Entity::None => reserved("none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cidr::{cidr_identity_labels, cidr_identity_labels6};
    use crate::labels::Labels;
    use crate::reserved::reserved_identities;

    #[test]
    fn parses_cilium_spelling_and_rejects_unknown() {
        let entities: Vec<Entity> =
            serde_json::from_str(r#"["world", "remote-node", "kube-apiserver", "all"]"#).unwrap();
        assert_eq!(
            entities,
            vec![
                Entity::World,
                Entity::RemoteNode,
                Entity::KubeApiserver,
                Entity::All
            ]
        );
        let err = serde_json::from_str::<Entity>(r#""World""#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `World`"), "{err}");
    }

    fn selects(entity: Entity, labels: &Labels) -> bool {
        entity.selectors().iter().any(|s| s.matches(labels))
    }

    #[test]
    fn cluster_is_everything_but_world_and_cidrs() {
        let cluster = Entity::Cluster.selector();
        for (id, labels) in reserved_identities() {
            assert_eq!(
                cluster.matches(&labels),
                id != 2 && id != 10,
                "identity {id}"
            );
        }
        assert!(cluster.matches(&Labels::parse_all(&["k8s:app=web"]).unwrap()));
        let cidr = cidr_identity_labels("10.0.0.0/8".parse().unwrap());
        let cidr6 = cidr_identity_labels6("2001:db8::/32".parse().unwrap());
        for labels in [&cidr, &cidr6] {
            assert!(!cluster.matches(labels));
            assert!(selects(Entity::World, labels));
        }
    }

    #[test]
    fn world_is_both_families_world_ipv4_and_world_ipv6_one_each() {
        let identities = reserved_identities();
        let cidr = cidr_identity_labels("10.0.0.0/8".parse().unwrap());
        let cidr6 = cidr_identity_labels6("2001:db8::/32".parse().unwrap());
        let outside4 = [&identities[&2], &cidr];
        let outside6 = [&identities[&10], &cidr6];
        for labels in outside4 {
            assert!(selects(Entity::World, labels) && selects(Entity::WorldIpv4, labels));
            assert!(!selects(Entity::WorldIpv6, labels), "{labels:?}");
        }
        for labels in outside6 {
            assert!(selects(Entity::World, labels) && selects(Entity::WorldIpv6, labels));
            assert!(!selects(Entity::WorldIpv4, labels), "{labels:?}");
        }
        let pod = Labels::parse_all(&["k8s:app=web"]).unwrap();
        for (id, labels) in identities.iter().filter(|(id, _)| **id != 2 && **id != 10) {
            assert!(!selects(Entity::World, labels), "identity {id}");
        }
        assert!(!selects(Entity::World, &pod));
    }

    #[test]
    fn world_ipv4_and_world_ipv6_are_what_the_default_routes_select() {
        let entities: Vec<Entity> =
            serde_json::from_str(r#"["world-ipv4", "world-ipv6"]"#).unwrap();
        assert_eq!(entities, vec![Entity::WorldIpv4, Entity::WorldIpv6]);
        assert_eq!(
            serde_json::to_string(&Entity::WorldIpv6).unwrap(),
            r#""world-ipv6""#
        );
        // The IPv6 world is what ::/0 selects, the IPv4 one 0.0.0.0/0.
        assert_eq!(
            Entity::WorldIpv6.selector(),
            crate::cidr::cidr_selector(&"::/0".parse().unwrap())
        );
        assert_eq!(
            Entity::WorldIpv4.selector(),
            crate::cidr::cidr_selector(&"0.0.0.0/0".parse().unwrap())
        );
    }

    #[test]
    fn reserved_entities_select_their_identity_only() {
        let identities = reserved_identities();
        for (entity, id) in [
            (Entity::Host, 1),
            (Entity::WorldIpv4, 2),
            (Entity::WorldIpv6, 10),
            (Entity::Unmanaged, 3),
            (Entity::Health, 4),
            (Entity::Init, 5),
            (Entity::RemoteNode, 6),
            (Entity::KubeApiserver, 7),
        ] {
            let selected: Vec<u32> = identities
                .iter()
                .filter(|(_, labels)| entity.selector().matches(labels))
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(selected, vec![id], "{entity:?}");
        }
        assert!(Entity::All.selector().is_wildcard());
        assert!(!identities
            .values()
            .any(|labels| Entity::None.selector().matches(labels)));
    }
}
