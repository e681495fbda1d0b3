//! The rules behind a flow's verdict, for Hubble's `*_allowed_by` /
//! `*_denied_by`. The datapath only reports the verdict and how its key
//! matched; which rules those keys came from is derived here from the
//! endpoint's rules as they are now (`policy::attribution`), so a flow read
//! long after a policy change names the rules of the revision it reports.

use policy::attribution::{attribute, Packet};
use policy::{Direction, Rule};

use super::Daemon;

/// A rule, as a flow names it (Cilium's `flow.Policy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleRef {
    /// From the Kubernetes object the rule came from (its
    /// `io.cilium.k8s.policy.*` labels); empty for rules imported directly.
    pub name: String,
    pub namespace: String,
    /// `CiliumNetworkPolicy`, `NetworkPolicy`, ...
    pub kind: String,
    /// The rule's labels, `source:key=value`.
    pub labels: Vec<String>,
    /// The repository's revision the rules were read at.
    pub revision: u64,
}

/// The rules that decided one packet at an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deciders {
    pub allowed_by: Vec<RuleRef>,
    pub denied_by: Vec<RuleRef>,
}

impl RuleRef {
    fn of(rule: &Rule, revision: u64) -> RuleRef {
        let value = |key: &str| -> String {
            rule.labels
                .iter()
                .find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.rsplit(':').next() == Some(key)).then(|| v.to_string())
                })
                .unwrap_or_default()
        };
        RuleRef {
            name: value(policy::policy_labels::POLICY_LABEL_NAME),
            namespace: value(policy::policy_labels::POLICY_LABEL_NAMESPACE),
            kind: value(policy::policy_labels::POLICY_LABEL_DERIVED_FROM),
            labels: rule.labels.clone(),
            revision,
        }
    }
}

impl Daemon {
    /// Which rules allow or deny, at local endpoint `endpoint`, a packet to
    /// or from `peer` (an identity) with this protocol and destination port
    /// in `direction`. `None` when the endpoint is not (or no longer) here.
    pub fn deciding_rules(
        &self,
        endpoint: u16,
        peer: u32,
        protocol: u8,
        dport: u16,
        direction: Direction,
    ) -> Option<Deciders> {
        let inner = self.lock();
        let ep = inner.endpoints.get(&endpoint)?;
        let revision = inner.repo.revision();
        let selecting = inner.repo.rules_selecting(&ep.labels);
        let labels = inner
            .identity(peer)
            .map(|i| i.labels.clone())
            .or_else(|| policy::reserved::reserved_name(peer).map(policy::Labels::reserved))
            .unwrap_or_default();
        let found = attribute(
            &selecting,
            &ep.named_ports,
            &inner.peer_ports,
            &Packet {
                identity: peer,
                labels: &labels,
                protocol,
                dport,
                direction,
            },
        );
        let refs = |positions: &[usize]| -> Vec<RuleRef> {
            positions
                .iter()
                .map(|p| RuleRef::of(selecting[*p], revision))
                .collect()
        };
        Some(Deciders {
            allowed_by: refs(&found.allowed_by),
            denied_by: refs(&found.denied_by),
        })
    }
}
