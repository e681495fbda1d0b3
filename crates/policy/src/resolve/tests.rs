//! Resolution of allow rules: enforcement, peers, ports — asserted on concrete
//! packets through the datapath's `lookup`.

use super::*;
use crate::lookup::{lookup, MatchType};
use crate::mapstate::{diff, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use crate::parse::parse_rules;
use crate::reserved::IDENTITY_WORLD;
use Direction::{Egress, Ingress};

pub(super) const FRONTEND: u32 = 1000;
pub(super) const BACKEND: u32 = 1001;
pub(super) const DB: u32 = 1002;

pub(super) fn labels(texts: &[&str]) -> Labels {
    Labels::parse_all(texts).unwrap()
}

pub(super) fn identities() -> BTreeMap<u32, Labels> {
    BTreeMap::from([
        (FRONTEND, labels(&["k8s:app=frontend"])),
        (BACKEND, labels(&["k8s:app=backend"])),
        (DB, labels(&["k8s:app=db", "k8s:tier=data"])),
    ])
}

/// Resolves `policy` (JSON or YAML) for the backend endpoint.
pub(super) fn resolve_backend(policy: &str) -> Resolved {
    let rules = parse_rules(policy).unwrap();
    let refs: Vec<&Rule> = rules.iter().collect();
    resolve(&refs, &labels(&["k8s:app=backend"]), &identities())
}

/// `(identity, protocol, port, direction, allowed)` cases against a map state.
pub(super) fn check(resolved: &Resolved, cases: &[(u32, u8, u16, Direction, bool)]) {
    for &(identity, protocol, port, direction, allowed) in cases {
        let verdict = lookup(&resolved.map_state, identity, protocol, port, direction);
        assert_eq!(
            verdict.allowed, allowed,
            "identity {identity} proto {protocol} port {port} {direction}: {verdict:?}\n{:#?}",
            resolved.map_state
        );
    }
}

fn keys(resolved: &Resolved) -> Vec<MapKey> {
    resolved.map_state.keys().copied().collect()
}

#[test]
fn no_rules_allows_everything_both_ways() {
    let resolved = resolve(&[], &labels(&["k8s:app=backend"]), &identities());
    assert!(!resolved.ingress_enforced && !resolved.egress_enforced);
    assert_eq!(
        keys(&resolved),
        vec![
            MapKey::any_port(0, 0, Ingress),
            MapKey::any_port(0, 0, Egress)
        ]
    );
    check(
        &resolved,
        &[
            (FRONTEND, PROTO_TCP, 80, Ingress, true),
            (IDENTITY_WORLD, PROTO_UDP, 53, Egress, true),
        ],
    );
    let verdict = lookup(&resolved.map_state, FRONTEND, PROTO_TCP, 80, Ingress);
    assert_eq!(verdict.match_type, MatchType::All);
}

#[test]
fn rules_for_other_endpoints_do_not_count() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {"matchLabels": {"app": "db"}}, "ingress": [{}]}]"#,
    );
    assert!(!resolved.ingress_enforced);
    check(&resolved, &[(FRONTEND, PROTO_TCP, 80, Ingress, true)]);
}

#[test]
fn ingress_from_frontend_on_tcp_80() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {"matchLabels": {"app": "backend"}},
             "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
                          "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]}]"#,
    );
    assert!(resolved.ingress_enforced && !resolved.egress_enforced);
    assert_eq!(
        keys(&resolved),
        vec![
            MapKey::any_port(0, 0, Egress),
            MapKey::any_port(1, 0, Ingress),
            MapKey::port(FRONTEND, PROTO_TCP, 80, Ingress),
        ]
    );
    check(
        &resolved,
        &[
            (FRONTEND, PROTO_TCP, 80, Ingress, true),
            (FRONTEND, PROTO_TCP, 81, Ingress, false),
            (FRONTEND, PROTO_UDP, 80, Ingress, false),
            (DB, PROTO_TCP, 80, Ingress, false),
            (IDENTITY_HOST, PROTO_TCP, 9999, Ingress, true),
            (DB, PROTO_TCP, 5432, Egress, true),
        ],
    );
    let verdict = lookup(&resolved.map_state, FRONTEND, PROTO_TCP, 80, Ingress);
    assert_eq!(verdict.match_type, MatchType::L3L4);
    let verdict = lookup(&resolved.map_state, DB, PROTO_TCP, 80, Ingress);
    assert!(!verdict.denied_by_rule);
}

#[test]
fn port_zero_means_every_port_of_the_protocol() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
             "toPorts": [{"ports": [{"port": "0", "protocol": "UDP"}]}]}]}]"#,
    );
    assert!(resolved
        .map_state
        .contains_key(&MapKey::any_port(FRONTEND, PROTO_UDP, Ingress)));
    check(
        &resolved,
        &[
            (FRONTEND, PROTO_UDP, 1, Ingress, true),
            (FRONTEND, PROTO_UDP, 65535, Ingress, true),
            (FRONTEND, PROTO_TCP, 53, Ingress, false),
        ],
    );
}

#[test]
fn any_protocol_expands_to_tcp_udp_sctp_not_icmp() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "egress": [{"toEndpoints": [{"matchLabels": {"app": "db"}}],
             "toPorts": [{"ports": [{"port": 5432}]}]}]}]"#,
    );
    assert!(resolved.egress_enforced && !resolved.ingress_enforced);
    check(
        &resolved,
        &[
            (DB, PROTO_TCP, 5432, Egress, true),
            (DB, PROTO_UDP, 5432, Egress, true),
            (DB, PROTO_SCTP, 5432, Egress, true),
            (DB, 1, 5432, Egress, false),
            (DB, PROTO_TCP, 5433, Egress, false),
        ],
    );
}

#[test]
fn l3_only_allows_all_ports() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}]}]}]"#,
    );
    check(
        &resolved,
        &[
            (FRONTEND, PROTO_TCP, 1, Ingress, true),
            (FRONTEND, 1, 8, Ingress, true),
            (DB, PROTO_TCP, 1, Ingress, false),
        ],
    );
    let verdict = lookup(&resolved.map_state, FRONTEND, PROTO_TCP, 1, Ingress);
    assert_eq!(verdict.match_type, MatchType::L3Only);
}

#[test]
fn l4_only_allows_every_peer_on_the_port() {
    let resolved = resolve_backend(
        "- endpointSelector: {}\n  ingress:\n  - toPorts:\n    - ports:\n      - port: 443\n        protocol: TCP\n",
    );
    check(
        &resolved,
        &[
            (IDENTITY_WORLD, PROTO_TCP, 443, Ingress, true),
            (DB, PROTO_TCP, 443, Ingress, true),
            (DB, PROTO_TCP, 444, Ingress, false),
        ],
    );
    let verdict = lookup(&resolved.map_state, DB, PROTO_TCP, 443, Ingress);
    assert_eq!(verdict.match_type, MatchType::L4Only);
}

#[test]
fn rules_selecting_the_endpoint_are_a_union() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {"matchLabels": {"app": "backend"}},
             "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
                          "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]},
            {"endpointSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["backend"]}]},
             "ingress": [{"fromEndpoints": [{"matchLabels": {"tier": "data"}}],
                          "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]}]}]"#,
    );
    check(
        &resolved,
        &[
            (FRONTEND, PROTO_TCP, 80, Ingress, true),
            (DB, PROTO_TCP, 8080, Ingress, true),
            (DB, PROTO_TCP, 80, Ingress, false),
            (FRONTEND, PROTO_TCP, 8080, Ingress, false),
        ],
    );
}

#[test]
fn empty_ingress_element_enforces_and_allows_only_host() {
    let resolved = resolve_backend(r#"[{"endpointSelector": {}, "ingress": [{}]}]"#);
    assert!(resolved.ingress_enforced);
    assert_eq!(
        keys(&resolved),
        vec![
            MapKey::any_port(0, 0, Egress),
            MapKey::any_port(1, 0, Ingress)
        ]
    );
}

#[test]
fn empty_section_list_does_not_enforce() {
    let resolved = resolve_backend(r#"[{"endpointSelector": {}, "ingress": [], "egress": []}]"#);
    assert!(!resolved.ingress_enforced && !resolved.egress_enforced);
}

#[test]
fn explicit_empty_peer_list_selects_nobody() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "egress": [{"toEndpoints": [],
             "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}]}]}]}]"#,
    );
    assert!(resolved.egress_enforced);
    assert_eq!(keys(&resolved), vec![MapKey::any_port(0, 0, Ingress)]);
}

#[test]
fn empty_selector_is_the_any_identity_including_world() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}, {"matchLabels": {"app": "db"}}]}]}]"#,
    );
    assert_eq!(
        keys(&resolved),
        vec![
            MapKey::any_port(0, 0, Ingress),
            MapKey::any_port(0, 0, Egress),
            MapKey::any_port(1, 0, Ingress)
        ]
    );
}

#[test]
fn reserved_identities_are_selectable_by_label() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "egress": [{"toEndpoints": [{"matchLabels": {"reserved:world": ""}}],
             "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}]}]"#,
    );
    check(
        &resolved,
        &[
            (IDENTITY_WORLD, PROTO_TCP, 443, Egress, true),
            (DB, PROTO_TCP, 443, Egress, false),
        ],
    );
    // NotIn also matches identities without the key, reserved ones included.
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "egress": [{"toEndpoints": [
             {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["frontend", "backend", "db"]}]}]}]}]"#,
    );
    let egress_ids: Vec<u32> = resolved
        .map_state
        .keys()
        .filter(|key| key.direction == Egress)
        .map(|key| key.identity)
        .collect();
    assert_eq!(egress_ids, vec![1, 2, 3, 4, 5, 6, 7, 10]);
}

#[test]
fn regeneration_diff_after_policy_change() {
    let before = resolve_backend(r#"[{"endpointSelector": {}, "ingress": [{}]}]"#);
    let after = resolve_backend(
        r#"[{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}]}]}]"#,
    );
    let (upserts, deletes) = diff(&before.map_state, &after.map_state);
    assert_eq!(
        upserts,
        vec![(MapKey::any_port(FRONTEND, 0, Ingress), MapEntry::allow())]
    );
    assert!(deletes.is_empty());
    let (upserts, deletes) = diff(&after.map_state, &before.map_state);
    assert!(upserts.is_empty());
    assert_eq!(deletes, vec![MapKey::any_port(FRONTEND, 0, Ingress)]);
}

#[test]
fn ingress_port_names_resolve_against_the_endpoints_own_ports() {
    let rules = parse_rules(
        r#"[{"endpointSelector": {"matchLabels": {"app": "backend"}},
             "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
                          "toPorts": [{"ports": [{"port": "http", "protocol": "TCP"},
                                                 {"port": "metrics"},
                                                 {"port": "dns", "protocol": "TCP"}]}]}]}]"#,
    )
    .unwrap();
    let refs: Vec<&Rule> = rules.iter().collect();
    let endpoint = labels(&["k8s:app=backend"]);
    let ports = crate::ports::NamedPorts::from([
        ("http".to_string(), (PROTO_TCP, 8080)),
        ("metrics".to_string(), (PROTO_UDP, 9100)),
        // Named, but UDP where the rule says TCP: not this rule's port.
        ("dns".to_string(), (PROTO_UDP, 53)),
    ]);
    let resolved = EndpointPolicy::compile(&refs, &endpoint)
        .with_named_ports(&ports)
        .resolve(&identities());
    check(
        &resolved,
        &[
            (FRONTEND, PROTO_TCP, 8080, Ingress, true),
            (FRONTEND, PROTO_UDP, 9100, Ingress, true),
            (FRONTEND, PROTO_UDP, 53, Ingress, false),
            (FRONTEND, PROTO_TCP, 80, Ingress, false),
            (DB, PROTO_TCP, 8080, Ingress, false),
        ],
    );

    // An endpoint without those names is isolated and allows none of them.
    let bare = EndpointPolicy::compile(&refs, &endpoint)
        .with_named_ports(&Default::default())
        .resolve(&identities());
    assert!(bare.ingress_enforced);
    check(&bare, &[(FRONTEND, PROTO_TCP, 8080, Ingress, false)]);
}

#[test]
fn egress_port_names_resolve_per_destination_identity() {
    let rules = parse_rules(
        r#"[{"endpointSelector": {"matchLabels": {"app": "backend"}},
             "egress": [{"toEndpoints": [{"matchExpressions": [{"key": "app", "operator": "Exists"}]}],
                         "toPorts": [{"ports": [{"port": "db", "protocol": "TCP"}]}]}]}]"#,
    )
    .unwrap();
    let refs: Vec<&Rule> = rules.iter().collect();
    let peers: PeerPorts = std::sync::Arc::new(BTreeMap::from([
        (
            DB,
            crate::ports::NamedPorts::from([("db".to_string(), (PROTO_TCP, 5432))]),
        ),
        // The same name, another number, on another workload.
        (
            FRONTEND,
            crate::ports::NamedPorts::from([("db".to_string(), (PROTO_TCP, 3306))]),
        ),
    ]));
    let resolved = EndpointPolicy::compile(&refs, &labels(&["k8s:app=backend"]))
        .with_peer_named_ports(&peers)
        .resolve(&identities());
    check(
        &resolved,
        &[
            (DB, PROTO_TCP, 5432, Egress, true),
            (DB, PROTO_TCP, 3306, Egress, false),
            (FRONTEND, PROTO_TCP, 3306, Egress, true),
            (FRONTEND, PROTO_TCP, 5432, Egress, false),
            // No port of that name: nothing.
            (BACKEND, PROTO_TCP, 5432, Egress, false),
        ],
    );
}
