//! Entities, CIDRs, port ranges, ICMP, deny precedence and enableDefaultDeny,
//! each asserted on allowed and denied packets.

use super::tests::{check, identities, labels, resolve_backend, DB, FRONTEND};
use super::*;
use crate::cidr::{cidr_identity_labels, cidr_prefixes};
use crate::lookup::lookup;
use crate::mapstate::{PROTO_ICMP, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use crate::parse::parse_rules;
use crate::reserved::{IDENTITY_REMOTE_NODE, IDENTITY_WORLD};
use Direction::{Egress, Ingress};

/// First local CIDR identity, like Cilium's 1<<24 scope.
const CIDR_BASE: u32 = 1 << 24;

/// Resolves for the backend with a CIDR identity per prefix the rules mention;
/// returns the state and the identity of each prefix (by text).
pub(super) fn resolve_with_cidrs(
    policy: &str,
    extra: &[&str],
) -> (Resolved, BTreeMap<String, u32>) {
    resolve_with_cidrs_for(&labels(&["k8s:app=backend"]), policy, extra)
}

/// `resolve_with_cidrs` for the endpoint with these labels.
pub(super) fn resolve_with_cidrs_for(
    endpoint: &Labels,
    policy: &str,
    extra: &[&str],
) -> (Resolved, BTreeMap<String, u32>) {
    let rules = parse_rules(policy).unwrap();
    let mut prefixes = cidr_prefixes(&rules);
    prefixes.extend(
        extra
            .iter()
            .map(|text| text.parse::<crate::cidr::Ipv4Cidr>().unwrap()),
    );
    let mut known = identities();
    let mut ids = BTreeMap::new();
    for (offset, prefix) in prefixes.into_iter().enumerate() {
        let id = CIDR_BASE + offset as u32;
        known.insert(id, cidr_identity_labels(prefix));
        ids.insert(prefix.to_string(), id);
    }
    let refs: Vec<&Rule> = rules.iter().collect();
    (resolve(&refs, endpoint, &known), ids)
}

#[test]
fn entities() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "ingress": [{"fromEntities": ["cluster"]}],
             "egress": [{"toEntities": ["world"]}, {"toEntities": ["remote-node"], "toPorts": [{"ports": [{"port": "10250", "protocol": "TCP"}]}]}]}]"#,
    );
    check(
        &resolved,
        &[
            (FRONTEND, PROTO_TCP, 80, Ingress, true),
            (IDENTITY_REMOTE_NODE, PROTO_TCP, 80, Ingress, true),
            (IDENTITY_WORLD, PROTO_TCP, 80, Ingress, false),
            (IDENTITY_WORLD, PROTO_TCP, 443, Egress, true),
            (DB, PROTO_TCP, 443, Egress, false),
            (IDENTITY_REMOTE_NODE, PROTO_TCP, 10250, Egress, true),
            (IDENTITY_REMOTE_NODE, PROTO_TCP, 22, Egress, false),
        ],
    );
    let all =
        resolve_backend(r#"[{"endpointSelector": {}, "ingress": [{"fromEntities": ["all"]}]}]"#);
    assert!(all.ingress_enforced);
    assert!(all.map_state.contains_key(&MapKey::any_port(0, 0, Ingress)));
    check(&all, &[(IDENTITY_WORLD, PROTO_UDP, 1, Ingress, true)]);
}

#[test]
fn cidr_selects_contained_cidr_identities_never_pods() {
    let (resolved, ids) = resolve_with_cidrs(
        r#"[{"endpointSelector": {}, "egress": [{"toCIDR": ["10.0.0.0/8"]},
             {"toCIDR": ["192.168.1.5"], "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}]}]}]}]"#,
        &["10.1.0.0/16", "172.16.0.0/12"],
    );
    check(
        &resolved,
        &[
            (ids["10.0.0.0/8"], PROTO_TCP, 80, Egress, true),
            (ids["10.1.0.0/16"], PROTO_TCP, 80, Egress, true),
            (ids["172.16.0.0/12"], PROTO_TCP, 80, Egress, false),
            (ids["192.168.1.5/32"], PROTO_UDP, 53, Egress, true),
            (ids["192.168.1.5/32"], PROTO_TCP, 53, Egress, false),
            (IDENTITY_WORLD, PROTO_TCP, 80, Egress, false),
            (DB, PROTO_TCP, 80, Egress, false),
        ],
    );
}

#[test]
fn cidr_set_except_carves_holes_and_world_covers_cidrs() {
    let (resolved, ids) = resolve_with_cidrs(
        r#"[{"endpointSelector": {}, "egress": [{"toCIDRSet": [{"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}]}],
             "ingress": [{"fromCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12"]}]},
                         {"fromEntities": ["world"], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}]}]"#,
        &["10.100.0.0/16", "10.1.0.0/16", "8.8.8.0/24"],
    );
    check(
        &resolved,
        &[
            (IDENTITY_WORLD, PROTO_TCP, 443, Egress, true),
            (ids["8.8.8.0/24"], PROTO_TCP, 443, Egress, true),
            (ids["10.1.0.0/16"], PROTO_TCP, 443, Egress, false),
            (DB, PROTO_TCP, 443, Egress, false),
            (ids["10.1.0.0/16"], PROTO_TCP, 22, Ingress, true),
            (ids["10.96.0.0/12"], PROTO_TCP, 22, Ingress, false),
            (ids["10.100.0.0/16"], PROTO_TCP, 22, Ingress, false),
            // world covers every CIDR identity, on the port it names.
            (ids["10.100.0.0/16"], PROTO_TCP, 443, Ingress, true),
            (ids["8.8.8.0/24"], PROTO_TCP, 443, Ingress, true),
            (DB, PROTO_TCP, 443, Ingress, false),
        ],
    );
}

#[test]
fn port_ranges() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
             "toPorts": [{"ports": [{"port": "8000", "endPort": 8090, "protocol": "TCP"}]}]}]}]"#,
    );
    check(
        &resolved,
        &[
            (FRONTEND, PROTO_TCP, 7999, Ingress, false),
            (FRONTEND, PROTO_TCP, 8000, Ingress, true),
            (FRONTEND, PROTO_TCP, 8045, Ingress, true),
            (FRONTEND, PROTO_TCP, 8090, Ingress, true),
            (FRONTEND, PROTO_TCP, 8091, Ingress, false),
            (FRONTEND, PROTO_UDP, 8045, Ingress, false),
        ],
    );
}

#[test]
fn icmp_type_travels_in_the_port() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "egress": [{"toEndpoints": [{"matchLabels": {"app": "db"}}],
             "icmps": [{"fields": [{"type": 8, "family": "IPv4"}]}]}]}]"#,
    );
    assert!(resolved
        .map_state
        .contains_key(&MapKey::port(DB, PROTO_ICMP, 8, Egress)));
    check(
        &resolved,
        &[
            (DB, PROTO_ICMP, 8, Egress, true),
            (DB, PROTO_ICMP, 0, Egress, false),
            (DB, PROTO_TCP, 8, Egress, false),
            (FRONTEND, PROTO_ICMP, 8, Egress, false),
        ],
    );
}

#[test]
fn deny_any_port_beats_allow_tcp_80_on_the_same_identity() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
             "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}],
             "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
             "toPorts": [{"ports": [{"port": "0", "protocol": "ANY"}]}]}]}]"#,
    );
    assert!(!resolved
        .map_state
        .contains_key(&MapKey::port(FRONTEND, PROTO_TCP, 80, Ingress)));
    let verdict = lookup(&resolved.map_state, FRONTEND, PROTO_TCP, 80, Ingress);
    assert!(!verdict.allowed && verdict.denied_by_rule);
    check(
        &resolved,
        &[
            (FRONTEND, PROTO_SCTP, 9, Ingress, false),
            (FRONTEND, 1, 8, Ingress, false),
        ],
    );
}

#[test]
fn l3_deny_beats_l4_allow_and_narrow_deny_leaves_the_rest() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}]},
                                                  {"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}],
             "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "db"}}]},
                             {"fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
                              "toPorts": [{"ports": [{"port": "20", "endPort": 23, "protocol": "TCP"}]}]}]}]"#,
    );
    check(
        &resolved,
        &[
            (DB, PROTO_TCP, 80, Ingress, false),
            (FRONTEND, PROTO_TCP, 80, Ingress, true),
            (FRONTEND, PROTO_TCP, 22, Ingress, false),
            (FRONTEND, PROTO_TCP, 24, Ingress, true),
            (FRONTEND, PROTO_UDP, 22, Ingress, true),
        ],
    );
    assert!(lookup(&resolved.map_state, DB, PROTO_TCP, 80, Ingress).denied_by_rule);
}

#[test]
fn wildcard_identity_deny_beats_specific_allow() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "egress": [{"toEndpoints": [{"matchLabels": {"app": "db"}}]}],
             "egressDeny": [{"toPorts": [{"ports": [{"port": "5432", "protocol": "TCP"}]}]}]}]"#,
    );
    // The specific allow stays in the map: the datapath consults identity 0 too.
    assert!(resolved
        .map_state
        .contains_key(&MapKey::any_port(DB, 0, Egress)));
    check(
        &resolved,
        &[
            (DB, PROTO_TCP, 5432, Egress, false),
            (DB, PROTO_TCP, 5433, Egress, true),
            (DB, PROTO_UDP, 5432, Egress, true),
        ],
    );
}

#[test]
fn deny_only_policy_enforces_and_deny_of_host_wins_over_localhost() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "ingressDeny": [{"fromEntities": ["world"]}]}]"#,
    );
    assert!(resolved.ingress_enforced);
    check(
        &resolved,
        &[
            (IDENTITY_WORLD, PROTO_TCP, 80, Ingress, false),
            (FRONTEND, PROTO_TCP, 80, Ingress, false),
            (IDENTITY_HOST, PROTO_TCP, 80, Ingress, true),
        ],
    );
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "ingress": [{"fromEntities": ["all"]}], "ingressDeny": [{"fromEntities": ["host"]}]}]"#,
    );
    check(
        &resolved,
        &[
            (IDENTITY_HOST, PROTO_TCP, 80, Ingress, false),
            (FRONTEND, PROTO_TCP, 80, Ingress, true),
        ],
    );
}

#[test]
fn enable_default_deny_false_only_adds() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "enableDefaultDeny": {"ingress": false, "egress": false},
             "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}]}],
             "egressDeny": [{"toEntities": ["world"]}]}]"#,
    );
    assert!(!resolved.ingress_enforced && !resolved.egress_enforced);
    check(
        &resolved,
        &[
            (DB, PROTO_TCP, 80, Ingress, true),
            (FRONTEND, PROTO_TCP, 80, Ingress, true),
            (DB, PROTO_TCP, 80, Egress, true),
            (IDENTITY_WORLD, PROTO_TCP, 80, Egress, false),
        ],
    );
    // Another rule without the opt-out still enforces.
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "enableDefaultDeny": {"ingress": false},
             "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}]}]},
            {"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "db"}}]}]}]"#,
    );
    assert!(resolved.ingress_enforced);
    check(
        &resolved,
        &[
            (DB, PROTO_TCP, 80, Ingress, true),
            (FRONTEND, PROTO_TCP, 80, Ingress, true),
            (IDENTITY_WORLD, PROTO_TCP, 80, Ingress, false),
        ],
    );
}
