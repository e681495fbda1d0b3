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
//! outside. This datapath is IPv4-only, i.e. single stack: identities 9 and 10
//! are not allocated (no packet could be classified as them), IPv4 CIDR
//! identities keep `reserved:world`, and so `world-ipv4` selects exactly what
//! `world` selects while `world-ipv6` selects nothing (no IPv6 packet passes
//! anyway). When IPv6 lands, IPv6 CIDR identities carry `reserved:world-ipv6`
//! (not `reserved:world`, so that `0.0.0.0/0` stays IPv4); `world` must then
//! also select them and `cluster` leave them out.

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
    /// Outside the cluster: `reserved:world`, which every CIDR identity carries too.
    World,
    /// Outside the cluster over IPv4. The datapath is IPv4-only, so this is
    /// what `world` selects (and what `0.0.0.0/0` selects).
    WorldIpv4,
    /// Outside the cluster over IPv6: `reserved:world-ipv6`, like `::/0`. No
    /// identity carries it until the datapath has IPv6, so it selects nothing.
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
    /// The selector this entity stands for; `all` is the wildcard `{}`.
    pub fn selector(self) -> EndpointSelector {
        match self {
            Entity::All => EndpointSelector::wildcard(),
            Entity::World | Entity::WorldIpv4 => reserved("world"),
            Entity::WorldIpv6 => reserved(WORLD_IPV6),
            // World and CIDR identities all carry `reserved:world`.
            Entity::Cluster => {
                EndpointSelector::wildcard().with_expression(LabelSelectorRequirement::new(
                    format!("{SOURCE_RESERVED}:world"),
                    SelectorOperator::DoesNotExist,
                    &[],
                ))
            }
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
    use crate::cidr::cidr_identity_labels;
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

    #[test]
    fn cluster_is_everything_but_world_and_cidrs() {
        let cluster = Entity::Cluster.selector();
        for (id, labels) in reserved_identities() {
            assert_eq!(cluster.matches(&labels), id != 2, "identity {id}");
        }
        assert!(cluster.matches(&Labels::parse_all(&["k8s:app=web"]).unwrap()));
        let cidr = cidr_identity_labels("10.0.0.0/8".parse().unwrap());
        assert!(!cluster.matches(&cidr));
        assert!(Entity::World.selector().matches(&cidr));
    }

    #[test]
    fn world_ipv4_is_the_ipv4_world_and_world_ipv6_selects_no_ipv4_identity() {
        let entities: Vec<Entity> =
            serde_json::from_str(r#"["world-ipv4", "world-ipv6"]"#).unwrap();
        assert_eq!(entities, vec![Entity::WorldIpv4, Entity::WorldIpv6]);
        assert_eq!(
            serde_json::to_string(&Entity::WorldIpv6).unwrap(),
            r#""world-ipv6""#
        );
        let cidr = cidr_identity_labels("10.0.0.0/8".parse().unwrap());
        let pod = Labels::parse_all(&["k8s:app=web"]).unwrap();
        for labels in reserved_identities().into_values().chain([cidr, pod]) {
            assert_eq!(
                Entity::WorldIpv4.selector().matches(&labels),
                Entity::World.selector().matches(&labels),
                "{labels:?}"
            );
            assert!(!Entity::WorldIpv6.selector().matches(&labels), "{labels:?}");
        }
        // The IPv6 world is what ::/0 selects.
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
            (Entity::World, 2),
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
