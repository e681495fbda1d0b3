//! Listeners, proxy ports on map keys, and the per-peer rules a redirect
//! hands to the proxy.

use super::tests::labels;
use super::*;
use crate::l7::{HttpRule, L7Rules};
use crate::mapstate::PROTO_TCP;
use crate::parse::parse_rules;

const DEATHSTAR: &str = r#"[{"endpointSelector": {"matchLabels": {"org": "empire", "class": "deathstar"}},
    "ingress": [{"fromEndpoints": [{"matchLabels": {"org": "empire"}}],
                 "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}],
                              "rules": {"http": [{"method": "POST", "path": "/v1/request-landing"}]}}]}]}]"#;

fn deathstar() -> Labels {
    labels(&["k8s:org=empire", "k8s:class=deathstar"])
}

fn identities() -> BTreeMap<u32, Labels> {
    BTreeMap::from([
        (1000, labels(&["k8s:org=empire", "k8s:class=tiefighter"])),
        (1001, labels(&["k8s:org=alliance", "k8s:class=xwing"])),
        (1002, deathstar()),
    ])
}

fn compiled(text: &str, endpoint: &Labels) -> EndpointPolicy {
    let rules = parse_rules(text).unwrap();
    let refs: Vec<&Rule> = rules.iter().collect();
    EndpointPolicy::compile(&refs, endpoint)
}

fn landing() -> L7Rules {
    L7Rules {
        http: Some(vec![HttpRule {
            method: Some("POST".into()),
            path: Some("/v1/request-landing".into()),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

#[test]
fn an_http_rule_makes_its_port_a_listener() {
    let policy = compiled(DEATHSTAR, &deathstar());
    assert_eq!(
        policy.listeners(),
        vec![Listener {
            direction: Direction::Ingress,
            port: 80,
            parser: L7Parser::Http
        }]
    );
}

#[test]
fn keys_carry_the_proxy_port_only_once_assigned() {
    let mut policy = compiled(DEATHSTAR, &deathstar());
    let key = MapKey::port(1000, PROTO_TCP, 80, Direction::Ingress);
    assert_eq!(
        policy.resolve(&identities()).map_state.get(&key),
        Some(&MapEntry::allow())
    );
    assert!(policy.redirects(&identities()).is_empty());

    policy.set_proxy_ports(BTreeMap::from([((Direction::Ingress, 80), 15001)]));
    let resolved = policy.resolve(&identities());
    assert_eq!(resolved.map_state[&key].proxy_port, 15001);
    // The alliance is not allowed at L3/L4: no key, so never redirected.
    assert!(!resolved.map_state.contains_key(&MapKey::port(
        1001,
        PROTO_TCP,
        80,
        Direction::Ingress
    )));
    // Incremental updates agree with the full resolution.
    let (upserts, _) = policy.identity_delta(1000, &identities()[&1000], true);
    assert!(upserts.contains(&(key, resolved.map_state[&key])));

    let redirects = policy.redirects(&identities());
    assert_eq!(redirects.len(), 1);
    assert_eq!(redirects[0].proxy_port, 15001);
    // Empire members: the tiefighter and the deathstar itself.
    assert_eq!(
        redirects[0].peers,
        vec![
            RedirectPeer {
                identity: 1000,
                rules: Some(landing())
            },
            RedirectPeer {
                identity: 1002,
                rules: Some(landing())
            },
        ]
    );
}

#[test]
fn an_l4_allow_on_the_same_port_voids_the_l7_restriction() {
    let text = r#"[{"endpointSelector": {}, "ingress": [
        {"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}], "rules": {"http": [{"path": "/public"}]}}]},
        {"fromEndpoints": [{"matchLabels": {"org": "alliance"}}], "toPorts": [{"ports": [{"port": "70", "endPort": 90}]}]}]}]"#;
    let mut policy = compiled(text, &deathstar());
    policy.set_proxy_ports(BTreeMap::from([((Direction::Ingress, 80), 15002)]));
    let peers = &policy.redirects(&identities())[0].peers;
    assert_eq!(peers[0].identity, 0);
    assert!(peers[0].rules.is_some());
    assert_eq!(
        peers[1],
        RedirectPeer {
            identity: 1001,
            rules: None
        }
    );
    // Any peer on exactly port 80 is redirected; the range's blocks are not.
    let state = policy.resolve(&identities()).map_state;
    assert_eq!(
        state[&MapKey::port(0, PROTO_TCP, 80, Direction::Ingress)].proxy_port,
        15002
    );
    assert!(state
        .iter()
        .filter(|(k, _)| k.identity == 1001)
        .all(|(_, e)| e.proxy_port == 0));
}

#[test]
fn deny_keys_are_never_redirected() {
    let text = r#"[{"endpointSelector": {}, "ingress": [
        {"fromEndpoints": [{}], "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}], "rules": {"http": [{}]}}]}],
        "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"org": "alliance"}}], "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]}]"#;
    let mut policy = compiled(text, &deathstar());
    policy.set_proxy_ports(BTreeMap::from([((Direction::Ingress, 80), 15003)]));
    let state = policy.resolve(&identities()).map_state;
    assert_eq!(
        state[&MapKey::port(1001, PROTO_TCP, 80, Direction::Ingress)],
        MapEntry::deny()
    );
}

#[test]
fn egress_kafka_listener() {
    let text = r#"[{"endpointSelector": {}, "egress": [{"toEndpoints": [{"matchLabels": {"class": "deathstar"}}],
        "toPorts": [{"ports": [{"port": "9092", "protocol": "TCP"}], "rules": {"kafka": [{"role": "produce", "topic": "t"}]}}]}]}]"#;
    let policy = compiled(text, &deathstar());
    assert_eq!(
        policy.listeners(),
        vec![Listener {
            direction: Direction::Egress,
            port: 9092,
            parser: L7Parser::Kafka
        }]
    );
}

#[test]
fn only_peers_with_l7_rules_on_the_port_are_redirected() {
    // Empire gets HTTP rules on 80; the alliance an L4-only allow of 80;
    // the deathstar itself both.
    let text = r#"[{"endpointSelector": {}, "ingress": [
        {"fromEndpoints": [{"matchLabels": {"org": "empire"}}],
         "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}], "rules": {"http": [{"path": "/public"}]}}]},
        {"fromEndpoints": [{"matchLabels": {"org": "alliance"}}, {"matchLabels": {"class": "deathstar"}}],
         "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]}]"#;
    let mut policy = compiled(text, &deathstar());
    policy.set_proxy_ports(BTreeMap::from([((Direction::Ingress, 80), 15004)]));
    let state = policy.resolve(&identities()).map_state;
    let proxy_port =
        |identity| state[&MapKey::port(identity, PROTO_TCP, 80, Direction::Ingress)].proxy_port;
    assert_eq!(proxy_port(1000), 15004, "an L7 peer is redirected");
    assert_eq!(proxy_port(1001), 0, "an L4-only peer goes straight through");
    assert_eq!(
        proxy_port(1002),
        15004,
        "selected by both: the redirect wins"
    );
    let peers = &policy.redirects(&identities())[0].peers;
    assert!(peers.contains(&RedirectPeer {
        identity: 1002,
        rules: None
    }));
}
