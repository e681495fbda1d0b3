//! NetworkPolicy translation, asserted on packets for the cases SEMANTICS.md lists.

use std::collections::BTreeMap;

use crate::cidr::{cidr_identity_labels, cidr_prefixes};
use crate::lookup::lookup;
use crate::mapstate::{Direction, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use crate::parse::parse_rules;
use crate::resolve::{resolve, Resolved};
use crate::rule::Rule;
use crate::Labels;

use Direction::{Egress, Ingress};

const PROD_WEB: u32 = 100;
const PROD_DB: u32 = 101;
const DEV_WEB: u32 = 102;
const MONITORING: u32 = 103;
const CIDR_INSIDE: u32 = 1 << 24;
const CIDR_HOLE: u32 = (1 << 24) + 1;

fn pod(app: &str, namespace: &str, namespace_labels: &[&str]) -> Labels {
    let mut texts = vec![
        format!("k8s:app={app}"),
        format!("k8s:io.kubernetes.pod.namespace={namespace}"),
        format!("k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={namespace}"),
    ];
    texts.extend(
        namespace_labels
            .iter()
            .map(|label| format!("k8s:io.cilium.k8s.namespace.labels.{label}")),
    );
    Labels::parse_all(&texts).unwrap()
}

fn identities() -> BTreeMap<u32, Labels> {
    BTreeMap::from([
        (PROD_WEB, pod("web", "prod", &["env=prod"])),
        (PROD_DB, pod("db", "prod", &["env=prod"])),
        (DEV_WEB, pod("web", "dev", &["env=dev"])),
        (MONITORING, pod("prometheus", "monitoring", &[])),
        (
            CIDR_INSIDE,
            cidr_identity_labels("10.1.0.0/16".parse().unwrap()),
        ),
        (
            CIDR_HOLE,
            cidr_identity_labels("10.2.0.0/16".parse().unwrap()),
        ),
    ])
}

/// Resolves the policy for the prod db pod.
fn resolve_db(policy: &str) -> Resolved {
    let rules = parse_rules(policy).unwrap();
    assert!(cidr_prefixes(&rules).len() <= 2);
    let refs: Vec<&Rule> = rules.iter().collect();
    resolve(&refs, &identities()[&PROD_DB], &identities())
}

fn allowed(resolved: &Resolved, id: u32, proto: u8, port: u16, dir: Direction) -> bool {
    lookup(&resolved.map_state, id, proto, port, dir).allowed
}

fn policy(spec: &str) -> String {
    format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: db\n  namespace: prod\nspec:\n{spec}")
}

#[test]
fn translation_keeps_kubernetes_labels_and_namespace() {
    let rules = parse_rules(&policy("  podSelector: {matchLabels: {app: db}}\n")).unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        serde_json::to_string(&rules[0].endpoint_selector).unwrap(),
        r#"{"matchLabels":{"k8s:app":"db","k8s:io.kubernetes.pod.namespace":"prod"}}"#
    );
    assert_eq!(
        rules[0].labels,
        vec![
            "k8s:io.cilium.k8s.policy.derived-from=NetworkPolicy",
            "k8s:io.cilium.k8s.policy.name=db",
            "k8s:io.cilium.k8s.policy.namespace=prod",
        ]
    );
}

#[test]
fn an_object_uid_becomes_the_policy_uid_label() {
    let text = policy("  podSelector: {}\n").replace(
        "  namespace: prod\n",
        "  namespace: prod\n  uid: 6f1c2a4e-0000-4000-8000-000000000001\n",
    );
    let rules = parse_rules(&text).unwrap();
    assert_eq!(
        rules[0].labels.last().unwrap(),
        "k8s:io.cilium.k8s.policy.uid=6f1c2a4e-0000-4000-8000-000000000001"
    );
}

#[test]
fn isolated_ingress_without_rules_denies_all_and_leaves_egress_open() {
    for spec in [
        "  podSelector: {}\n",
        "  podSelector: {}\n  ingress: []\n",
        "  podSelector: {}\n  policyTypes: [Ingress]\n",
    ] {
        let resolved = resolve_db(&policy(spec));
        assert!(
            resolved.ingress_enforced && !resolved.egress_enforced,
            "{spec}"
        );
        assert!(
            !allowed(&resolved, PROD_WEB, PROTO_TCP, 80, Ingress),
            "{spec}"
        );
        assert!(
            allowed(&resolved, 1, PROTO_TCP, 80, Ingress),
            "host probes still pass"
        );
        assert!(allowed(&resolved, DEV_WEB, PROTO_TCP, 80, Egress), "{spec}");
    }
    let resolved = resolve_db(&policy("  podSelector: {}\n  policyTypes: [Egress]\n"));
    assert!(!resolved.ingress_enforced && resolved.egress_enforced);
    assert!(!allowed(&resolved, PROD_WEB, PROTO_UDP, 53, Egress));
}

#[test]
fn empty_rule_allows_everything_and_empty_pod_selector_is_the_whole_namespace() {
    let resolved = resolve_db(&policy("  podSelector: {}\n  ingress: [{}]\n"));
    assert!(resolved.ingress_enforced);
    for id in [PROD_WEB, DEV_WEB, 2, CIDR_INSIDE] {
        assert!(allowed(&resolved, id, PROTO_UDP, 9, Ingress), "{id}");
    }
    let resolved = resolve_db(&policy(
        "  podSelector: {}\n  ingress: [{from: [{podSelector: {}}]}]\n",
    ));
    assert!(allowed(&resolved, PROD_WEB, PROTO_TCP, 80, Ingress));
    assert!(!allowed(&resolved, DEV_WEB, PROTO_TCP, 80, Ingress));
    assert!(!allowed(&resolved, 2, PROTO_TCP, 80, Ingress));
}

#[test]
fn namespace_selectors_select_pods_of_other_namespaces() {
    let resolved = resolve_db(&policy(
        "  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: dev}}\n",
    ));
    assert!(allowed(&resolved, DEV_WEB, PROTO_TCP, 80, Ingress));
    assert!(!allowed(&resolved, PROD_WEB, PROTO_TCP, 80, Ingress));
    // Empty namespaceSelector: every pod of every namespace, nothing else.
    let resolved = resolve_db(&policy(
        "  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {}}]}]\n",
    ));
    for (id, expected) in [
        (DEV_WEB, true),
        (MONITORING, true),
        (PROD_WEB, true),
        (2, false),
        (6, false),
        (CIDR_INSIDE, false),
    ] {
        assert_eq!(
            allowed(&resolved, id, PROTO_TCP, 80, Ingress),
            expected,
            "{id}"
        );
    }
    // NotIn on namespace labels never selects non-pod identities.
    let resolved = resolve_db(&policy(
        "  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}}]}]\n",
    ));
    for (id, expected) in [
        (DEV_WEB, true),
        (MONITORING, true),
        (PROD_WEB, false),
        (2, false),
        (1, true),
    ] {
        // (host passes through allow-localhost, not through the selector)
        assert_eq!(
            allowed(&resolved, id, PROTO_TCP, 80, Ingress),
            expected,
            "{id}"
        );
    }
    // Both in one peer = AND; several peers = OR.
    let resolved = resolve_db(&policy(
        "  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {env: dev}}\n      podSelector: {matchLabels: {app: db}}\n    - podSelector: {matchLabels: {app: web}}\n",
    ));
    assert!(!allowed(&resolved, DEV_WEB, PROTO_TCP, 80, Ingress));
    assert!(allowed(&resolved, PROD_WEB, PROTO_TCP, 80, Ingress));
    assert!(!allowed(&resolved, MONITORING, PROTO_TCP, 80, Ingress));
}

#[test]
fn ip_block_except_and_ports() {
    let resolved = resolve_db(&policy(
        "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.2.0.0/16]}}]\n    ports: [{port: 5432}, {protocol: UDP, port: 53}, {protocol: SCTP}]\n",
    ));
    assert!(allowed(&resolved, CIDR_INSIDE, PROTO_TCP, 5432, Egress));
    assert!(
        !allowed(&resolved, CIDR_INSIDE, PROTO_UDP, 5432, Egress),
        "no protocol = TCP"
    );
    assert!(allowed(&resolved, CIDR_INSIDE, PROTO_UDP, 53, Egress));
    assert!(
        allowed(&resolved, CIDR_INSIDE, PROTO_SCTP, 9999, Egress),
        "no port = every port"
    );
    assert!(!allowed(&resolved, CIDR_HOLE, PROTO_TCP, 5432, Egress));
    assert!(
        !allowed(&resolved, PROD_WEB, PROTO_TCP, 5432, Egress),
        "ipBlock never selects pods"
    );
    assert!(!allowed(&resolved, 2, PROTO_TCP, 5432, Egress));
}

#[test]
fn end_port_is_inclusive() {
    let resolved = resolve_db(&policy(
        "  podSelector: {}\n  ingress: [{ports: [{protocol: TCP, port: 32000, endPort: 32768}]}]\n",
    ));
    for (port, expected) in [(31999, false), (32000, true), (32768, true), (32769, false)] {
        assert_eq!(
            allowed(&resolved, DEV_WEB, PROTO_TCP, port, Ingress),
            expected,
            "{port}"
        );
    }
}

#[test]
fn errors_name_the_field() {
    let err = |spec: &str| parse_rules(&policy(spec)).unwrap_err().to_string();
    assert_eq!(
        err("  podSelector: {}\n  ingress: [{ports: [{port: 80, endPort: 70}]}]\n"),
        r#"NetworkPolicy "db": spec.ingress[0].ports[0].endPort: 70 is below port 80"#
    );
    assert!(
        err("  podSelector: {}\n  egress: [{ports: [{port: http, endPort: 90}]}]\n")
            .contains("spec.egress[0].ports[0].endPort: cannot be used with a named port")
    );
    assert_eq!(
        err("  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]\n"),
        r#"NetworkPolicy "db": spec.ingress[0].from[0]: ipBlock cannot be combined with podSelector or namespaceSelector"#
    );
    assert!(err("  podSelector: {}\n  ingress: [{to: []}]\n")
        .contains("spec.ingress[0]: unknown field `to`"));
    assert!(
        err("  podSelector: {}\n  ingress: [{ports: [{protocol: tcp}]}]\n")
            .contains("spec.ingress[0].ports[0].protocol")
    );
    assert!(err("  ingress: []\n").contains("missing field `podSelector`"));
    assert_eq!(
        err("  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/8]}}]}]\n"),
        r#"NetworkPolicy "db": spec.egress[0].to[0].ipBlock.except[0]: 11.0.0.0/8 is not inside 10.0.0.0/8"#
    );
}
