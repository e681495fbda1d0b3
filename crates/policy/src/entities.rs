//! `fromEntities`/`toEntities`: named classes of peers that have no labels of
//! their own, each standing for a selector over identities (Cilium's
//! `EntitySelectorMapping`).

use serde::{Deserialize, Serialize};

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
            Entity::World => reserved("world"),
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
