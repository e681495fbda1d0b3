use super::*;
use crate::mapstate::{diff, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use crate::parse::parse_rules;
use crate::reserved::IDENTITY_WORLD;
use Direction::{Egress, Ingress};

const FRONTEND: u32 = 1000;
const BACKEND: u32 = 1001;
const DB: u32 = 1002;

fn labels(texts: &[&str]) -> Labels {
    Labels::parse_all(texts).unwrap()
}

fn identities() -> BTreeMap<u32, Labels> {
    BTreeMap::from([
        (FRONTEND, labels(&["k8s:app=frontend"])),
        (BACKEND, labels(&["k8s:app=backend"])),
        (DB, labels(&["k8s:app=db", "k8s:tier=data"])),
    ])
}

/// Resolves `policy` (JSON or YAML) for the backend endpoint.
fn resolve_backend(policy: &str) -> Resolved {
    let rules = parse_rules(policy).unwrap();
    let refs: Vec<&Rule> = rules.iter().collect();
    resolve(&refs, &labels(&["k8s:app=backend"]), &identities())
}

fn keys(resolved: &Resolved) -> Vec<(u32, u8, u16, Direction)> {
    resolved
        .map_state
        .keys()
        .map(|key| (key.identity, key.protocol, key.dport, key.direction))
        .collect()
}

#[test]
fn no_rules_allows_everything_both_ways() {
    let resolved = resolve(&[], &labels(&["k8s:app=backend"]), &identities());
    assert!(!resolved.ingress_enforced && !resolved.egress_enforced);
    assert_eq!(keys(&resolved), vec![(0, 0, 0, Ingress), (0, 0, 0, Egress)]);
    assert!(resolved
        .map_state
        .values()
        .all(|entry| *entry == MapEntry::allow()));
}

#[test]
fn rules_for_other_endpoints_do_not_count() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {"matchLabels": {"app": "db"}}, "ingress": [{}]}]"#,
    );
    assert!(!resolved.ingress_enforced);
    assert_eq!(keys(&resolved), vec![(0, 0, 0, Ingress), (0, 0, 0, Egress)]);
}

#[test]
fn ingress_from_frontend_on_tcp_80() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {"matchLabels": {"app": "backend"}},
             "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
                          "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]}]"#,
    );
    assert!(resolved.ingress_enforced);
    assert!(!resolved.egress_enforced);
    assert_eq!(
        keys(&resolved),
        vec![
            (0, 0, 0, Egress),
            (1, 0, 0, Ingress),
            (FRONTEND, PROTO_TCP, 80, Ingress),
        ]
    );
}

#[test]
fn port_zero_means_every_port_of_the_protocol() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
             "toPorts": [{"ports": [{"port": "0", "protocol": "UDP"}]}]}]}]"#,
    );
    assert!(resolved
        .map_state
        .contains_key(&MapKey::new(FRONTEND, PROTO_UDP, 0, Ingress)));
    assert_eq!(resolved.map_state.len(), 3);
}

#[test]
fn any_protocol_expands_to_tcp_udp_sctp() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "egress": [{"toEndpoints": [{"matchLabels": {"app": "db"}}],
             "toPorts": [{"ports": [{"port": 5432}]}]}]}]"#,
    );
    assert!(resolved.egress_enforced && !resolved.ingress_enforced);
    assert_eq!(
        keys(&resolved),
        vec![
            (0, 0, 0, Ingress),
            (DB, PROTO_TCP, 5432, Egress),
            (DB, PROTO_UDP, 5432, Egress),
            (DB, PROTO_SCTP, 5432, Egress),
        ]
    );
}

#[test]
fn l3_only_allows_all_ports() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}]}]}]"#,
    );
    assert_eq!(
        keys(&resolved),
        vec![
            (0, 0, 0, Egress),
            (1, 0, 0, Ingress),
            (FRONTEND, 0, 0, Ingress)
        ]
    );
}

#[test]
fn l4_only_allows_every_peer_on_the_port() {
    let resolved = resolve_backend(
        "- endpointSelector: {}\n  ingress:\n  - toPorts:\n    - ports:\n      - port: 443\n        protocol: TCP\n",
    );
    assert_eq!(
        keys(&resolved),
        vec![
            (0, 0, 0, Egress),
            (0, PROTO_TCP, 443, Ingress),
            (1, 0, 0, Ingress)
        ]
    );
}

#[test]
fn rules_selecting_the_endpoint_are_a_union() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {"matchLabels": {"app": "backend"}},
             "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
                          "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]},
            {"endpointSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["backend"]}]},
             "ingress": [{"fromEndpoints": [{"matchLabels": {"tier": "data"}}],
                          "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]},
                         {"fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
                          "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]}]"#,
    );
    assert_eq!(
        keys(&resolved),
        vec![
            (0, 0, 0, Egress),
            (1, 0, 0, Ingress),
            (FRONTEND, PROTO_TCP, 80, Ingress),
            (DB, PROTO_TCP, 8080, Ingress),
        ]
    );
}

#[test]
fn empty_ingress_element_enforces_and_allows_only_host() {
    let resolved = resolve_backend(r#"[{"endpointSelector": {}, "ingress": [{}]}]"#);
    assert!(resolved.ingress_enforced);
    assert_eq!(keys(&resolved), vec![(0, 0, 0, Egress), (1, 0, 0, Ingress)]);
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
    assert_eq!(keys(&resolved), vec![(0, 0, 0, Ingress)]);
}

#[test]
fn empty_selector_is_the_any_identity_including_world() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}, {"matchLabels": {"app": "db"}}]}]}]"#,
    );
    assert_eq!(
        keys(&resolved),
        vec![(0, 0, 0, Ingress), (0, 0, 0, Egress), (1, 0, 0, Ingress)]
    );
}

#[test]
fn reserved_identities_are_selectable_by_label() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "egress": [{"toEndpoints": [{"matchLabels": {"reserved:world": ""}}],
             "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}]}]"#,
    );
    assert_eq!(
        keys(&resolved),
        vec![(0, 0, 0, Ingress), (IDENTITY_WORLD, PROTO_TCP, 443, Egress)]
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
    assert_eq!(egress_ids, vec![1, 2, 3, 4, 5, 6, 7]);
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
        vec![(MapKey::new(FRONTEND, 0, 0, Ingress), MapEntry::allow())]
    );
    assert!(deletes.is_empty());
    let (upserts, deletes) = diff(&after.map_state, &before.map_state);
    assert!(upserts.is_empty());
    assert_eq!(deletes, vec![MapKey::new(FRONTEND, 0, 0, Ingress)]);
}
