//! `cilium policy trace`: the verdict for one flow, computed from the very
//! objects that program the kernel. The destination's ingress is looked up
//! (`policy::lookup`) in the map state its compiled `EndpointPolicy`
//! resolves to, the source's egress likewise; per-rule outcomes only
//! explain that verdict and never decide it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use api::models::{
    DirectionTrace, PolicyTraceResult, RuleTrace, TracePeer, TracePort, TraceSelector,
};
use policy::{Direction, EndpointPolicy, Labels, MapState, MatchType, Rule};

use crate::daemon::{Daemon, Inner};
use crate::error::AgentError;

/// Stand-ins for label sets that have no identity yet: never allocated.
const UNALLOCATED_SRC: u32 = u32::MAX - 1;
const UNALLOCATED_DST: u32 = u32::MAX - 2;

/// Cilium's L4 protocol names; an ICMP "port" is the message type.
const PROTOCOLS: [(&str, u8); 6] = [
    ("ANY", 0),
    ("TCP", 6),
    ("UDP", 17),
    ("SCTP", 132),
    ("ICMP", 1),
    ("ICMPV6", 58),
];

/// One side of the traced flow.
struct Peer {
    /// The number policy lookups use (a stand-in when unallocated).
    lookup_id: u32,
    allocated: bool,
    labels: Labels,
    endpoint: Option<u16>,
    /// The endpoint's own compiled policy, or the rules compiled for the labels.
    policy: EndpointPolicy,
}

impl Peer {
    /// Reserved and CIDR identities carry no policy of their own on this node.
    fn has_policy(&self) -> bool {
        self.endpoint.is_some()
            || self
                .labels
                .iter()
                .any(|l| l.source != "reserved" && l.source != policy::cidr::SOURCE_CIDR)
    }

    fn model(&self) -> TracePeer {
        TracePeer {
            identity: if self.allocated { self.lookup_id } else { 0 },
            labels: self.labels.to_strings(),
            endpoint: self.endpoint,
        }
    }
}

#[derive(Debug)]
struct Port {
    protocol: u8,
    port: u16,
    text: String,
}

fn bad(msg: String) -> AgentError {
    AgentError::BadRequest(msg)
}

fn parse_ports(ports: &[TracePort]) -> Result<Vec<Port>, AgentError> {
    if ports.is_empty() {
        return Ok(vec![Port {
            protocol: 0,
            port: 0,
            text: "ANY".into(),
        }]);
    }
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let name = if p.protocol.is_empty() {
                "TCP".to_string()
            } else {
                p.protocol.to_ascii_uppercase()
            };
            let protocol = PROTOCOLS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, num)| *num)
                .ok_or_else(|| {
                    bad(format!(
                        "to.dports[{i}].protocol: unknown protocol {:?} (expected TCP, UDP, SCTP, ICMP, ICMPV6 or ANY)",
                        p.protocol
                    ))
                })?;
            Ok(Port {
                protocol,
                port: p.port,
                text: format!("{}/{name}", p.port),
            })
        })
        .collect()
}

/// Labels as an endpoint would carry them: pods also carry their
/// namespace's name label (see `endpoints::parse_labels`).
fn parse_labels(field: &str, texts: &[String]) -> Result<Labels, AgentError> {
    let mut labels = Labels::parse_all(texts).map_err(|e| bad(format!("{field}.labels: {e}")))?;
    super::super::endpoints::add_namespace_name(&mut labels);
    Ok(labels)
}

fn resolve_peer(
    inner: &Inner,
    identities: &BTreeMap<u32, Labels>,
    field: &str,
    labels: &[String],
    identity: Option<u32>,
    endpoint: Option<u16>,
    stand_in: u32,
) -> Result<Peer, AgentError> {
    let given = [!labels.is_empty(), identity.is_some(), endpoint.is_some()];
    match given.iter().filter(|g| **g).count() {
        0 => {
            return Err(bad(format!(
                "{field}: give labels, an identity or an endpoint"
            )))
        }
        1 => {}
        _ => {
            return Err(bad(format!(
                "{field}: give only one of labels, identity, endpoint"
            )))
        }
    }
    let endpoint_of = |id: u32| {
        inner
            .endpoints
            .values()
            .find(|ep| ep.identity == id)
            .map(|ep| ep.id)
    };
    let (lookup_id, allocated, labels, endpoint) = if let Some(ep) = endpoint {
        let rec = inner.endpoints.get(&ep).ok_or_else(|| {
            AgentError::NotFound(format!("{field}.endpoint: endpoint {ep} not found"))
        })?;
        (rec.identity, true, rec.labels.clone(), Some(ep))
    } else if let Some(id) = identity {
        let labels = identities.get(&id).cloned().ok_or_else(|| {
            AgentError::NotFound(format!("{field}.identity: identity {id} not found"))
        })?;
        (id, true, labels, endpoint_of(id))
    } else {
        let labels = parse_labels(field, labels)?;
        match identities.iter().find(|(_, l)| **l == labels) {
            Some((id, _)) => (*id, true, labels, endpoint_of(*id)),
            None => (stand_in, false, labels, None),
        }
    };
    let policy = match endpoint.and_then(|ep| inner.policies.get(&ep)) {
        Some(compiled) => compiled.clone(),
        None => inner.compile(&labels),
    };
    Ok(Peer {
        lookup_id,
        allocated,
        labels,
        endpoint,
        policy,
    })
}

pub fn match_type_text(m: MatchType) -> &'static str {
    match m {
        MatchType::L3L4 => "L3-L4",
        MatchType::L3Only => "L3-Only",
        MatchType::L4Only => "L4-Only",
        MatchType::All => "all",
        MatchType::None => "none",
    }
}

fn speaks_about(rule: &Rule, direction: Direction) -> bool {
    let non_empty = |v: Option<usize>| v.unwrap_or(0) > 0;
    match direction {
        Direction::Ingress => {
            non_empty(rule.ingress.as_ref().map(Vec::len))
                || non_empty(rule.ingress_deny.as_ref().map(Vec::len))
        }
        Direction::Egress => {
            non_empty(rule.egress.as_ref().map(Vec::len))
                || non_empty(rule.egress_deny.as_ref().map(Vec::len))
        }
    }
}

/// What one rule alone says about the flow: compiled and looked up like
/// the whole policy, with default deny forced so that only its own
/// elements can allow.
fn rule_outcome(
    rule: &Rule,
    subject: &Labels,
    peer: &Peer,
    port: &Port,
    direction: Direction,
) -> &'static str {
    let mut alone = rule.clone();
    alone.enable_default_deny = None;
    let compiled = EndpointPolicy::compile(&[&alone], subject);
    let mut state = compiled.wildcard_keys();
    state.extend(compiled.identity_keys(peer.lookup_id, &peer.labels));
    let v = policy::lookup(&state, peer.lookup_id, port.protocol, port.port, direction);
    if v.denied_by_rule {
        "denies"
    } else if v.allowed {
        "allows"
    } else {
        "no match"
    }
}

struct Side<'a> {
    subject: &'a Peer,
    peer: &'a Peer,
    direction: Direction,
    state: &'a MapState,
}

fn trace_direction(rules: &[Rule], side: &Side<'_>, port: &Port) -> DirectionTrace {
    let Side {
        subject,
        peer,
        direction,
        state,
    } = *side;
    let enforced = match direction {
        Direction::Ingress => subject.policy.ingress_enforced(),
        Direction::Egress => subject.policy.egress_enforced(),
    };
    let traced: Vec<RuleTrace> = rules
        .iter()
        .filter(|r| r.selects(&subject.labels) && speaks_about(r, direction))
        .map(|r| RuleTrace {
            labels: r.labels.clone(),
            selector: serde_json::to_string(&r.endpoint_selector).unwrap_or_default(),
            outcome: rule_outcome(r, &subject.labels, peer, port, direction).into(),
        })
        .collect();
    if !subject.has_policy() {
        return DirectionTrace {
            port: port.text.clone(),
            enforced: false,
            rules: Vec::new(),
            verdict: "allowed".into(),
            match_type: "none".into(),
            reason: format!(
                "{} is not an endpoint: no {direction} policy applies to it",
                subject.labels
            ),
        };
    }
    let v = policy::lookup(state, peer.lookup_id, port.protocol, port.port, direction);
    let mt = match_type_text(v.match_type);
    let reason = if !enforced {
        format!("no rule enforces {direction} policy: all traffic allowed")
    } else if v.allowed && traced.iter().any(|r| r.outcome == "allows") {
        format!("allowed by rule, match {mt}")
    } else if v.allowed {
        format!("allowed without a rule (the local host is always allowed), match {mt}")
    } else if v.denied_by_rule {
        format!("denied by a deny rule, match {mt}")
    } else {
        "no rule allows it (default deny)".into()
    };
    DirectionTrace {
        port: port.text.clone(),
        enforced,
        rules: traced,
        verdict: if v.allowed { "allowed" } else { "denied" }.into(),
        match_type: mt.into(),
        reason,
    }
}

impl Daemon {
    pub fn policy_trace(&self, sel: &TraceSelector) -> Result<PolicyTraceResult, AgentError> {
        let ports = parse_ports(&sel.to.dports)?;
        let inner = self.lock();
        let mut identities = policy::reserved::reserved_identities();
        identities.extend(inner.all_identities());
        let f = &sel.from;
        let t = &sel.to;
        let src = resolve_peer(
            &inner,
            &identities,
            "from",
            &f.labels,
            f.identity,
            f.endpoint,
            UNALLOCATED_SRC,
        )?;
        let dst = resolve_peer(
            &inner,
            &identities,
            "to",
            &t.labels,
            t.identity,
            t.endpoint,
            UNALLOCATED_DST,
        )?;
        // The same resolution regeneration runs; stand-ins join the known
        // identities so that their keys exist as they would once allocated.
        let mut known = identities;
        known.insert(src.lookup_id, src.labels.clone());
        known.insert(dst.lookup_id, dst.labels.clone());
        let egress_state = src.policy.resolve(&known).map_state;
        let ingress_state = dst.policy.resolve(&known).map_state;
        let rules = inner.repo.rules();
        let egress_side = Side {
            subject: &src,
            peer: &dst,
            direction: Direction::Egress,
            state: &egress_state,
        };
        let ingress_side = Side {
            subject: &dst,
            peer: &src,
            direction: Direction::Ingress,
            state: &ingress_state,
        };
        let egress: Vec<_> = ports
            .iter()
            .map(|p| trace_direction(rules, &egress_side, p))
            .collect();
        let ingress: Vec<_> = ports
            .iter()
            .map(|p| trace_direction(rules, &ingress_side, p))
            .collect();
        let allowed = egress
            .iter()
            .chain(&ingress)
            .all(|d| d.verdict == "allowed");
        let mut result = PolicyTraceResult {
            log: String::new(),
            verdict: if allowed { "allowed" } else { "denied" }.into(),
            source: src.model(),
            destination: dst.model(),
            egress,
            ingress,
        };
        let selected = |p: &Peer| rules.iter().filter(|r| r.selects(&p.labels)).count();
        result.log = render_log(
            &result,
            &ports,
            [selected(&src), selected(&dst)],
            rules.len(),
        );
        Ok(result)
    }
}

/// The text `cilium policy trace` prints, in Cilium's layout.
fn render_log(r: &PolicyTraceResult, ports: &[Port], selected: [usize; 2], total: usize) -> String {
    let mut out = String::new();
    let ports: Vec<&str> = ports.iter().map(|p| p.text.as_str()).collect();
    let _ = writeln!(
        out,
        "----------------------------------------------------------------"
    );
    let _ = writeln!(
        out,
        "Tracing From: [{}] => To: [{}] Ports: [{}]",
        r.source.labels.join(", "),
        r.destination.labels.join(", "),
        ports.join(", ")
    );
    let sections = [
        (
            "egress",
            "Egress",
            &r.source,
            &r.egress,
            &r.destination,
            "to",
            selected[0],
        ),
        (
            "ingress",
            "Ingress",
            &r.destination,
            &r.ingress,
            &r.source,
            "from",
            selected[1],
        ),
    ];
    for (dir, title, subject, traces, peer, preposition, n_selected) in sections {
        let _ = writeln!(
            out,
            "\nResolving {dir} policy for [{}]",
            subject.labels.join(", ")
        );
        let Some(first) = traces.first() else {
            continue;
        };
        for (i, rule) in first.rules.iter().enumerate() {
            let _ = writeln!(
                out,
                "* Rule [{}] {}: selected",
                rule.labels.join(", "),
                rule.selector
            );
            for t in traces {
                let _ = writeln!(
                    out,
                    "    {} {preposition} [{}]: {}",
                    t.port,
                    peer.labels.join(", "),
                    t.rules[i].outcome
                );
            }
        }
        let _ = writeln!(out, "{n_selected}/{total} rules selected");
        for t in traces {
            let _ = writeln!(
                out,
                "{title} verdict ({}): {} ({})",
                t.port, t.verdict, t.reason
            );
        }
    }
    let _ = writeln!(out, "\nFinal verdict: {}", r.verdict.to_uppercase());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_default_to_tcp_and_name_bad_protocols() {
        let ports = parse_ports(&[
            TracePort {
                port: 80,
                protocol: String::new(),
            },
            TracePort {
                port: 53,
                protocol: "udp".into(),
            },
            TracePort {
                port: 8,
                protocol: "ICMP".into(),
            },
        ])
        .unwrap();
        let got: Vec<_> = ports
            .iter()
            .map(|p| (p.protocol, p.port, p.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [(6, 80, "80/TCP"), (17, 53, "53/UDP"), (1, 8, "8/ICMP")]
        );
        let err = parse_ports(&[TracePort {
            port: 1,
            protocol: "QUIC".into(),
        }])
        .unwrap_err();
        assert!(err.to_string().contains("to.dports[0].protocol"), "{err}");
        let any = parse_ports(&[]).unwrap();
        assert_eq!(
            (any[0].protocol, any[0].port, any[0].text.as_str()),
            (0, 0, "ANY")
        );
    }

    fn rule(yaml: &str) -> Rule {
        policy::parse_rules(yaml).unwrap().remove(0)
    }

    fn peer(id: u32, labels: &[&str], rules: &[&Rule]) -> Peer {
        let labels = Labels::parse_all(labels).unwrap();
        Peer {
            lookup_id: id,
            allocated: true,
            policy: EndpointPolicy::compile(rules, &labels),
            labels,
            endpoint: Some(id as u16),
        }
    }

    #[test]
    fn rule_outcomes_explain_the_verdict() {
        let allow = rule(
            "- endpointSelector: {matchLabels: {app: db}}\n  labels: [k8s:name=allow]\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: web}}]\n    toPorts: [{ports: [{port: \"5432\", protocol: TCP}]}]\n",
        );
        let deny = rule(
            "- endpointSelector: {matchLabels: {app: db}}\n  ingressDeny:\n  - fromEndpoints: [{matchLabels: {app: bad}}]\n",
        );
        let rules = vec![allow.clone(), deny.clone()];
        let refs: Vec<&Rule> = rules.iter().collect();
        let db = peer(300, &["k8s:app=db"], &refs);
        let web = peer(301, &["k8s:app=web"], &refs);
        let bad_peer = peer(302, &["k8s:app=bad"], &refs);
        let mut known = policy::reserved::reserved_identities();
        for p in [&db, &web, &bad_peer] {
            known.insert(p.lookup_id, p.labels.clone());
        }
        let state = db.policy.resolve(&known).map_state;
        let tcp = |port| Port {
            protocol: 6,
            port,
            text: format!("{port}/TCP"),
        };
        let side = |peer| Side {
            subject: &db,
            peer,
            direction: Direction::Ingress,
            state: &state,
        };

        let t = trace_direction(&rules, &side(&web), &tcp(5432));
        assert_eq!(
            (t.verdict.as_str(), t.match_type.as_str()),
            ("allowed", "L3-L4")
        );
        let outcomes: Vec<_> = t.rules.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(outcomes, ["allows", "no match"]);
        assert_eq!(t.rules[0].labels, ["k8s:name=allow"]);

        let t = trace_direction(&rules, &side(&web), &tcp(22));
        assert_eq!(t.verdict, "denied");
        assert_eq!(t.reason, "no rule allows it (default deny)");

        let t = trace_direction(&rules, &side(&bad_peer), &tcp(5432));
        assert_eq!(t.verdict, "denied");
        assert!(
            t.reason.starts_with("denied by a deny rule"),
            "{}",
            t.reason
        );
        let outcomes: Vec<_> = t.rules.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(outcomes, ["no match", "denies"]);

        let egress = trace_direction(
            &rules,
            &Side {
                subject: &web,
                peer: &db,
                direction: Direction::Egress,
                state: &web.policy.resolve(&known).map_state,
            },
            &tcp(5432),
        );
        assert_eq!(egress.verdict, "allowed");
        assert!(!egress.enforced && egress.rules.is_empty());
    }
}
