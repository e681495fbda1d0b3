use crate::lookup::lookup;
use crate::mapstate::{Direction, PROTO_TCP};
use crate::parse::parse_rules;
use crate::resolve::resolve;
use crate::rule::Rule;
use crate::selector::EndpointSelector;
use crate::{Labels, PolicyError};
use std::collections::BTreeMap;

fn labels(texts: &[&str]) -> Labels {
    Labels::parse_all(texts).unwrap()
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

const WEB: &str = "
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web
  namespace: prod
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingress:
  - fromEndpoints:
    - {}
    - matchLabels: {app: fe}
    - matchLabels: {k8s:io.kubernetes.pod.namespace: other}
    - matchLabels: {io.cilium.k8s.namespace.labels.team: a}
    - matchLabels: {reserved:host: ''}
  egressDeny:
  - toEndpoints:
    - matchExpressions: [{key: io.kubernetes.pod.namespace, operator: In, values: [x]}]
    toPorts: [{ports: [{port: '22', protocol: TCP}]}]
";

#[test]
fn namespaced_policy_scopes_selectors_like_cilium() {
    let rules = parse_rules(WEB).unwrap();
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(
        json(&rule.endpoint_selector),
        r#"{"matchLabels":{"app":"web","k8s:io.kubernetes.pod.namespace":"prod"}}"#
    );
    let peers: Vec<String> = rule.ingress.as_ref().unwrap()[0]
        .from_endpoints
        .as_ref()
        .unwrap()
        .iter()
        .map(json)
        .collect();
    assert_eq!(
        peers,
        vec![
            r#"{"matchLabels":{"k8s:io.kubernetes.pod.namespace":"prod"}}"#,
            r#"{"matchLabels":{"app":"fe","k8s:io.kubernetes.pod.namespace":"prod"}}"#,
            r#"{"matchLabels":{"k8s:io.kubernetes.pod.namespace":"other"}}"#,
            r#"{"matchLabels":{"io.cilium.k8s.namespace.labels.team":"a"}}"#,
            r#"{"matchLabels":{"reserved:host":""}}"#,
        ]
    );
    let deny_peer = &rule.egress_deny.as_ref().unwrap()[0]
        .to_endpoints
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        deny_peer.match_labels().len(),
        0,
        "already names the namespace"
    );
    assert_eq!(
        rule.labels,
        vec![
            "k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy",
            "k8s:io.cilium.k8s.policy.name=web",
            "k8s:io.cilium.k8s.policy.namespace=prod",
        ]
    );
}

#[test]
fn empty_peer_means_this_namespace_only() {
    let rules = parse_rules(WEB).unwrap();
    let refs: Vec<&Rule> = rules.iter().collect();
    let web = labels(&["k8s:app=web", "k8s:io.kubernetes.pod.namespace=prod"]);
    let identities = BTreeMap::from([
        (
            100,
            labels(&["k8s:app=x", "k8s:io.kubernetes.pod.namespace=prod"]),
        ),
        (
            101,
            labels(&["k8s:app=x", "k8s:io.kubernetes.pod.namespace=dev"]),
        ),
        (
            102,
            labels(&["k8s:app=x", "k8s:io.kubernetes.pod.namespace=other"]),
        ),
    ]);
    let resolved = resolve(&refs, &web, &identities);
    let allowed = |id| lookup(&resolved.map_state, id, PROTO_TCP, 80, Direction::Ingress).allowed;
    assert!(allowed(100));
    assert!(!allowed(101));
    assert!(allowed(102));
    assert!(!allowed(2), "world is not in the namespace");
    // The policy does not select the same app in another namespace.
    let elsewhere = labels(&["k8s:app=web", "k8s:io.kubernetes.pod.namespace=dev"]);
    assert!(!resolve(&refs, &elsewhere, &identities).ingress_enforced);
}

#[test]
fn clusterwide_policy_limits_peers_to_pods() {
    let rules = parse_rules(
        "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: all-pods}\n\
         specs:\n- endpointSelector: {}\n  ingress: [{fromEndpoints: [{}]}]\n\
         - endpointSelector: {matchLabels: {reserved:init: ''}}\n  egress: [{toEndpoints: [{}]}]\n",
    )
    .unwrap();
    assert_eq!(rules.len(), 2);
    assert!(rules[0].endpoint_selector.is_wildcard());
    let peer = &rules[0].ingress.as_ref().unwrap()[0]
        .from_endpoints
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        json(peer),
        r#"{"matchExpressions":[{"key":"k8s:io.kubernetes.pod.namespace","operator":"Exists"}]}"#
    );
    let init_peer = &rules[1].egress.as_ref().unwrap()[0]
        .to_endpoints
        .as_ref()
        .unwrap()[0];
    assert_eq!(init_peer, &EndpointSelector::wildcard());
    assert_eq!(
        rules[0].labels,
        vec![
            "k8s:io.cilium.k8s.policy.derived-from=CiliumClusterwideNetworkPolicy",
            "k8s:io.cilium.k8s.policy.name=all-pods",
        ]
    );
}

#[test]
fn missing_namespace_is_default_and_specs_add_up() {
    let rules = parse_rules(
        r#"{"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "x"},
            "spec": {"endpointSelector": {}, "labels": ["k8s:team=a"]},
            "specs": [{"endpointSelector": {}}, {"endpointSelector": {}}]}"#,
    )
    .unwrap();
    assert_eq!(rules.len(), 3);
    assert!(rules[0]
        .labels
        .contains(&"k8s:io.cilium.k8s.policy.namespace=default".to_string()));
    assert!(rules[0].labels.contains(&"k8s:team=a".to_string()));
    assert_eq!(
        rules[1].endpoint_selector.match_labels()["k8s:io.kubernetes.pod.namespace"],
        "default"
    );
}

#[test]
fn errors_name_object_document_and_path() {
    let text = "endpointSelector: {}\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web}\n\
                spec:\n  endpointSelector: {}\n  ingress:\n  - toPorts:\n    - ports: [{port: '80', endPort: 70}]\n";
    assert_eq!(
        parse_rules(text).unwrap_err().to_string(),
        r#"CiliumNetworkPolicy "web" (document 2): spec.ingress[0].toPorts[0].ports[0].endPort: 70 is below port 80"#
    );
    let err = parse_rules(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web}\nspecs:\n- endpointSelector: {}\n- endpointSelector: {}\n  egress: [{toEntity: [world]}]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            r#"CiliumNetworkPolicy "web": specs[1].egress[0].toEntity: unknown field `toEntity`"#
        ),
        "{err}"
    );
    let err =
        parse_rules("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web}\n")
            .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"CiliumNetworkPolicy "web": spec: missing (expected spec or specs)"#
    );
    let err = parse_rules(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nspec: {endpointSelector: {}}\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "CiliumNetworkPolicy: metadata.name: missing (a policy object needs a name)"
    );
    let err = parse_rules("apiVersion: cilium.io/v1\nkind: CiliumNetworkPolicy\nmetadata: {name: a}\nspec: {endpointSelector: {}}\n").unwrap_err();
    assert!(
        matches!(err, PolicyError::Invalid { ref path, .. } if path == "apiVersion"),
        "{err}"
    );
    let err = parse_rules(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: a}\nspec:\n  endpointSelector: {}\n  egress: [{toPorts: [{ports: [{port: https, endPort: 500}]}]}]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            "spec.egress[0].toPorts[0].ports[0].endPort: cannot be used with a named port"
        ),
        "{err}"
    );
}

const FQDN: &str = "
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: fqdn
  namespace: prod
spec:
  endpointSelector:
    matchLabels: {app: client}
  egress:
  - toEndpoints:
    - matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s:k8s-app: kube-dns}
    toPorts:
    - ports: [{port: '53', protocol: ANY}]
      rules:
        dns:
        - matchPattern: '*'
  - toFQDNs:
    - matchName: api.github.com
    - matchPattern: '*.cilium.io'
    toPorts: [{ports: [{port: '443', protocol: TCP}]}]
";

#[test]
fn cnp_and_ccnp_accept_dns_aware_rules_unscoped() {
    let rules = parse_rules(FQDN).unwrap();
    let egress = rules[0].egress.as_ref().unwrap();
    let dns = egress[0].to_ports.as_ref().unwrap()[0]
        .rules
        .as_ref()
        .unwrap();
    assert_eq!(json(&dns.dns), r#"[{"matchPattern":"*"}]"#);
    // DNS names are not endpoint selectors: no namespace scoping.
    assert_eq!(
        json(&egress[1].to_fqdns),
        r#"[{"matchName":"api.github.com"},{"matchPattern":"*.cilium.io"}]"#
    );

    let object = |kind: &str, namespace: &str, spec: &str| {
        format!("apiVersion: cilium.io/v2\nkind: {kind}\nmetadata: {{name: x{namespace}}}\nspec:\n  endpointSelector: {{}}\n  {spec}\n")
    };
    let ccnp = object(
        "CiliumClusterwideNetworkPolicy",
        "",
        "egress: [{toFQDNs: [{matchPattern: '**.example.com'}]}]",
    );
    let rules = parse_rules(&ccnp).unwrap();
    assert_eq!(
        json(&rules[0].egress.as_ref().unwrap()[0].to_fqdns),
        r#"[{"matchPattern":"**.example.com"}]"#
    );

    let deny = object(
        "CiliumNetworkPolicy",
        ", namespace: prod",
        "egressDeny: [{toFQDNs: [{matchName: a.com}]}]",
    );
    assert_eq!(
        parse_rules(&deny).unwrap_err().to_string(),
        r#"CiliumNetworkPolicy "x": spec.egressDeny[0].toFQDNs: toFQDNs is not allowed in deny rules (egressDeny takes no DNS names)"#
    );
    let bad = object(
        "CiliumNetworkPolicy",
        "",
        "egress: [{toFQDNs: [{matchPattern: 'a..com'}]}]",
    );
    let err = parse_rules(&bad).unwrap_err().to_string();
    assert!(
        err.starts_with(r#"CiliumNetworkPolicy "x": spec.egress[0].toFQDNs[0].matchPattern: "#),
        "{err}"
    );
}
