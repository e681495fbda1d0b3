//! Incremental identity updates: for every policy of a corpus, every endpoint
//! and every identity, applying `identity_delta` to the state resolved before
//! gives exactly the state resolved after — both when the identity appears and
//! when it disappears.

use super::tests::labels;
use super::*;
use crate::cidr::cidr_identity_labels;
use crate::fqdn::{fqdn_identity_labels, FqdnSelector};
use crate::parse::parse_rules;

const CORPUS: &[&str] = &[
    r#"[{"endpointSelector": {}, "ingress": [{}]}]"#,
    r#"[{"endpointSelector": {"matchLabels": {"app": "web"}},
         "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "fe"}}],
                      "toPorts": [{"ports": [{"port": "80", "endPort": 90, "protocol": "TCP"}]}]}],
         "egress": [{"toEndpoints": [{"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}]}]}]"#,
    r#"[{"endpointSelector": {}, "ingress": [{"fromEntities": ["cluster"]}],
         "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "fe"}}], "toPorts": [{"ports": [{"port": "0"}]}]}],
         "egress": [{"toCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12"]}]}, {"toEntities": ["world"], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}],
         "egressDeny": [{"toCIDR": ["10.1.0.0/16"], "toPorts": [{"ports": [{"port": "22", "protocol": "TCP"}]}]}]}]"#,
    r#"[{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}]}, {"fromEndpoints": [{"matchLabels": {"app": "db"}}], "toPorts": [{"ports": [{"port": "5432"}]}]}],
         "ingressDeny": [{"fromEntities": ["host"]}, {"toPorts": [{"ports": [{"port": "5432", "protocol": "TCP"}]}]}]},
        {"endpointSelector": {"matchLabels": {"app": "db"}}, "enableDefaultDeny": {"egress": false},
         "egressDeny": [{"toEntities": ["world"]}], "egress": [{"toEndpoints": [{"matchLabels": {"app": "web"}}], "icmps": [{"fields": [{"type": 8}]}]}]}]"#,
    r#"[{"endpointSelector": {}, "egress": [
         {"toFQDNs": [{"matchName": "api.github.com"}, {"matchPattern": "*.cilium.io"}], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]},
         {"toEntities": ["world"], "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]},
         {"toEndpoints": [{"matchLabels": {"app": "db"}}], "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}], "rules": {"dns": [{"matchPattern": "*"}]}}]}],
         "egressDeny": [{"toCIDR": ["140.82.0.0/16"], "toPorts": [{"ports": [{"port": "22", "protocol": "TCP"}]}]}]}]"#,
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np, namespace: prod}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: a}}\n    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}\n    ports: [{port: 80}]\n  egress:\n  - to: [{podSelector: {matchLabels: {app: db}}}]\n",
];

fn endpoints() -> Vec<Labels> {
    vec![
        labels(&["k8s:app=web", "k8s:io.kubernetes.pod.namespace=prod"]),
        labels(&["k8s:app=db", "k8s:io.kubernetes.pod.namespace=prod"]),
    ]
}

fn peer_identities() -> BTreeMap<u32, Labels> {
    let mut peers = BTreeMap::from([
        (
            1000,
            labels(&["k8s:app=fe", "k8s:io.kubernetes.pod.namespace=prod"]),
        ),
        (
            1001,
            labels(&["k8s:app=db", "k8s:io.kubernetes.pod.namespace=prod"]),
        ),
        (
            1002,
            labels(&["k8s:app=web", "k8s:io.kubernetes.pod.namespace=prod"]),
        ),
        (
            1003,
            labels(&[
                "k8s:app=x",
                "k8s:io.kubernetes.pod.namespace=other",
                "k8s:io.cilium.k8s.namespace.labels.team=a",
            ]),
        ),
    ]);
    for (offset, prefix) in [
        "10.0.0.0/8",
        "10.1.0.0/16",
        "10.96.0.0/12",
        "10.97.0.0/16",
        "8.8.8.8/32",
    ]
    .iter()
    .enumerate()
    {
        peers.insert(
            (1 << 24) + offset as u32,
            cidr_identity_labels(prefix.parse().unwrap()),
        );
    }
    // IPs learned for DNS names: CIDR identities with `fqdn:` labels.
    let github = FqdnSelector::name("api.github.com");
    let cilium = FqdnSelector::pattern("*.cilium.io");
    for (offset, (ip, selectors)) in [
        ([140, 82, 112, 6], vec![&github]),
        ([140, 82, 112, 7], vec![&github, &cilium]),
        ([104, 198, 14, 52], vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        peers.insert(
            (1 << 24) + 100 + offset as u32,
            fqdn_identity_labels(ip.into(), selectors),
        );
    }
    peers
}

fn apply(state: &MapState, delta: (Vec<(MapKey, MapEntry)>, Vec<MapKey>)) -> MapState {
    let mut state = state.clone();
    for key in delta.1 {
        state.remove(&key);
    }
    state.extend(delta.0);
    state
}

#[test]
fn delta_equals_full_recompute() {
    let all = peer_identities();
    let mut checked = 0;
    for policy in CORPUS {
        let rules = parse_rules(policy).unwrap();
        let refs: Vec<&Rule> = rules.iter().collect();
        for endpoint in endpoints() {
            let compiled = EndpointPolicy::compile(&refs, &endpoint);
            for (identity, identity_labels) in &all {
                let mut without = all.clone();
                without.remove(identity);
                let before = resolve(&refs, &endpoint, &without);
                let after = resolve(&refs, &endpoint, &all);
                let added = identity_delta(&refs, &endpoint, *identity, identity_labels, true);
                assert_eq!(
                    apply(&before.map_state, added),
                    after.map_state,
                    "{policy} add {identity}"
                );
                let removed = compiled.identity_delta(*identity, identity_labels, false);
                assert_eq!(
                    apply(&after.map_state, removed),
                    before.map_state,
                    "{policy} remove {identity}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, CORPUS.len() * 2 * all.len());
}

#[test]
fn delta_only_touches_the_identity() {
    let rules = parse_rules(CORPUS[2]).unwrap();
    let refs: Vec<&Rule> = rules.iter().collect();
    let endpoint = labels(&["k8s:app=web"]);
    let cidr = cidr_identity_labels("10.1.0.0/16".parse().unwrap());
    let (upserts, deletes) = identity_delta(&refs, &endpoint, 77, &cidr, true);
    assert!(deletes.is_empty());
    assert!(!upserts.is_empty());
    assert!(upserts.iter().all(|(key, _)| key.identity == 77));
    // The deny of TCP 22 to 10.1.0.0/16 is among them.
    assert!(upserts.contains(&(MapKey::port(77, 6, 22, Direction::Egress), MapEntry::deny())));
    assert_eq!(
        identity_delta(&refs, &endpoint, 0, &cidr, true),
        (vec![], vec![])
    );
}

/// The per-identity walk (`identity_keys`, which incremental updates use)
/// and the batch walk through the selector cache build the same map state;
/// compiled rules shared between endpoints give the same policy as a fresh
/// compile.
#[test]
fn cached_resolution_equals_per_identity_resolution() {
    let all = peer_identities();
    for policy in CORPUS {
        let rules = parse_rules(policy).unwrap();
        let refs: Vec<&Rule> = rules.iter().collect();
        let shared = CompiledRules::new(&rules);
        let mut cache = SelectorCache::new(all.clone());
        for endpoint in endpoints() {
            let compiled = EndpointPolicy::compile(&refs, &endpoint);
            assert_eq!(shared.policy_for(&endpoint), compiled, "{policy}");
            let mut per_identity = compiled.wildcard_keys();
            for (identity, labels) in cache.identities().clone() {
                per_identity.extend(compiled.identity_keys(identity, &labels));
            }
            assert_eq!(
                compiled.resolve_cached(&mut cache).map_state,
                per_identity,
                "{policy}"
            );
        }
    }
}
