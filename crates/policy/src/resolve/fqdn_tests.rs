//! DNS-aware policy: `toFQDNs` peers select the identities of learned IPs
//! by their `fqdn:` labels, and `rules.dns` makes port 53 a DNS listener
//! over UDP and TCP.

use super::tests::labels;
use super::*;
use crate::fqdn::{fqdn_identity_labels, FqdnSelector};
use crate::l7::L7Rules;
use crate::lookup::lookup;
use crate::mapstate::{PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use crate::parse::parse_rules;
use crate::reserved::IDENTITY_WORLD;
use Direction::Egress;

const GITHUB: u32 = 16_777_300;
const GITHUB_UNLABELLED: u32 = 16_777_301;
const CILIUM_SUB: u32 = 16_777_302;
const KUBE_DNS: u32 = 1500;

fn client() -> Labels {
    labels(&["k8s:app=client"])
}

/// A client reaching `api.github.com` and `*.cilium.io` on 443, and
/// kube-dns on 53 through the DNS proxy.
const POLICY: &str = r#"[{"endpointSelector": {"matchLabels": {"app": "client"}}, "egress": [
    {"toFQDNs": [{"matchName": "api.github.com"}, {"matchPattern": "*.cilium.io"}],
     "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]},
    {"toEndpoints": [{"matchLabels": {"k8s-app": "kube-dns"}}],
     "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}],
                  "rules": {"dns": [{"matchPattern": "*"}]}}]}]}]"#;

fn identities() -> BTreeMap<u32, Labels> {
    let ip = |last| std::net::Ipv4Addr::new(140, 82, 112, last);
    BTreeMap::from([
        (
            GITHUB,
            fqdn_identity_labels(ip(6).into(), &[FqdnSelector::name("api.github.com")]),
        ),
        // The same kind of IP, learned for no selector of this policy.
        (GITHUB_UNLABELLED, fqdn_identity_labels(ip(7).into(), [])),
        (
            CILIUM_SUB,
            fqdn_identity_labels(ip(8).into(), &[FqdnSelector::pattern("*.cilium.io")]),
        ),
        (KUBE_DNS, labels(&["k8s:k8s-app=kube-dns"])),
    ])
}

fn compiled(text: &str) -> EndpointPolicy {
    let rules = parse_rules(text).unwrap();
    let refs: Vec<&Rule> = rules.iter().collect();
    EndpointPolicy::compile(&refs, &client())
}

fn allowed(resolved: &Resolved, identity: u32, protocol: u8, port: u16) -> bool {
    lookup(&resolved.map_state, identity, protocol, port, Egress).allowed
}

#[test]
fn fqdn_peers_select_the_identities_labelled_for_them() {
    let resolved = compiled(POLICY).resolve(&identities());
    assert!(resolved.egress_enforced);
    assert!(allowed(&resolved, GITHUB, PROTO_TCP, 443));
    assert!(!allowed(&resolved, GITHUB, PROTO_TCP, 80));
    assert!(allowed(&resolved, CILIUM_SUB, PROTO_TCP, 443));
    assert!(!allowed(&resolved, GITHUB_UNLABELLED, PROTO_TCP, 443));
    assert!(!allowed(&resolved, IDENTITY_WORLD, PROTO_TCP, 443));
    assert!(!allowed(&resolved, KUBE_DNS, PROTO_TCP, 443));
}

#[test]
fn a_pattern_selects_only_identities_labelled_with_that_pattern_text() {
    // `*.cilium.io` would match the name `api.cilium.io`, but the selector
    // picks identities by label: one labelled for the name alone is not
    // selected (the agent labels every IP with each matching selector).
    let mut known = identities();
    known.insert(
        16_777_303,
        fqdn_identity_labels([1, 1, 1, 1].into(), &[FqdnSelector::name("api.cilium.io")]),
    );
    known.insert(
        16_777_304,
        fqdn_identity_labels(
            [1, 1, 1, 2].into(),
            &[FqdnSelector::pattern("*.CILIUM.io.")],
        ),
    );
    let resolved = compiled(POLICY).resolve(&known);
    assert!(!allowed(&resolved, 16_777_303, PROTO_TCP, 443));
    assert!(
        allowed(&resolved, 16_777_304, PROTO_TCP, 443),
        "normalized text"
    );
}

#[test]
fn world_and_cidr_peers_also_select_learned_ips() {
    let text = r#"[{"endpointSelector": {}, "egress": [
        {"toEntities": ["world"], "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]},
        {"toCIDR": ["140.82.112.0/24"], "toPorts": [{"ports": [{"port": "22", "protocol": "TCP"}]}]}]}]"#;
    let resolved = compiled(text).resolve(&identities());
    for identity in [GITHUB, GITHUB_UNLABELLED, CILIUM_SUB] {
        assert!(allowed(&resolved, identity, PROTO_TCP, 80), "{identity}");
        assert!(allowed(&resolved, identity, PROTO_TCP, 22), "{identity}");
    }
    assert!(!allowed(&resolved, KUBE_DNS, PROTO_TCP, 80));
}

#[test]
fn an_empty_to_fqdns_selects_nobody() {
    let text = r#"[{"endpointSelector": {}, "egress": [{"toFQDNs": []}]}]"#;
    let resolved = compiled(text).resolve(&identities());
    assert!(resolved.egress_enforced);
    assert!(resolved.map_state.keys().all(|key| key.direction != Egress));
}

#[test]
fn dns_rules_make_port_53_a_dns_listener_over_udp_and_tcp() {
    let mut policy = compiled(POLICY);
    assert_eq!(
        policy.listeners(),
        vec![Listener {
            direction: Egress,
            port: 53,
            parser: L7Parser::Dns
        }]
    );
    // ANY on a proxied port is TCP and UDP only, redirected once assigned.
    let udp = MapKey::port(KUBE_DNS, PROTO_UDP, 53, Egress);
    let tcp = MapKey::port(KUBE_DNS, PROTO_TCP, 53, Egress);
    let before = policy.resolve(&identities()).map_state;
    assert_eq!(before.get(&udp), Some(&MapEntry::allow()));
    assert!(!allowed(
        &policy.resolve(&identities()),
        KUBE_DNS,
        PROTO_SCTP,
        53
    ));

    policy.set_proxy_ports(BTreeMap::from([((Egress, 53), 15053)]));
    let state = policy.resolve(&identities()).map_state;
    assert_eq!(state[&udp].proxy_port, 15053);
    assert_eq!(state[&tcp].proxy_port, 15053);
    // Other peers' keys are untouched: 443 to learned IPs is not proxied.
    let https = MapKey::port(GITHUB, PROTO_TCP, 443, Egress);
    assert_eq!(state[&https], MapEntry::allow());
    let (upserts, _) = policy.identity_delta(KUBE_DNS, &identities()[&KUBE_DNS], true);
    assert!(upserts.contains(&(udp, state[&udp])));

    let redirects = policy.redirects(&identities());
    assert_eq!(redirects.len(), 1);
    assert_eq!(redirects[0].proxy_port, 15053);
    assert_eq!(
        redirects[0].peers,
        vec![RedirectPeer {
            identity: KUBE_DNS,
            rules: Some(L7Rules {
                dns: Some(vec![FqdnSelector::pattern("*")]),
                ..Default::default()
            })
        }]
    );
}

#[test]
fn an_http_listener_never_redirects_udp() {
    let text = r#"[{"endpointSelector": {}, "egress": [
        {"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}], "rules": {"http": [{}]}}]},
        {"toPorts": [{"ports": [{"port": "80", "protocol": "UDP"}]}]}]}]"#;
    let mut policy = compiled(text);
    policy.set_proxy_ports(BTreeMap::from([((Egress, 80), 15080)]));
    let state = policy.resolve(&identities()).map_state;
    assert_eq!(
        state[&MapKey::port(0, PROTO_TCP, 80, Egress)].proxy_port,
        15080
    );
    assert_eq!(
        state[&MapKey::port(0, PROTO_UDP, 80, Egress)],
        MapEntry::allow()
    );
}

#[test]
fn dns_wins_a_port_over_http_so_udp_stays_proxied() {
    let text = r#"[{"endpointSelector": {}, "egress": [
        {"toPorts": [{"ports": [{"port": "53", "protocol": "TCP"}], "rules": {"http": [{}]}}]},
        {"toEndpoints": [{"matchLabels": {"k8s-app": "kube-dns"}}],
         "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}], "rules": {"dns": [{"matchName": "a.com"}]}}]}]}]"#;
    let mut policy = compiled(text);
    assert_eq!(policy.listeners()[0].parser, L7Parser::Dns);
    policy.set_proxy_ports(BTreeMap::from([((Egress, 53), 15053)]));
    let state = policy.resolve(&identities()).map_state;
    assert_eq!(
        state[&MapKey::port(KUBE_DNS, PROTO_UDP, 53, Egress)].proxy_port,
        15053
    );
    // The HTTP element's peers are left out of the DNS listener: refused.
    let peers = &policy.redirects(&identities())[0].peers;
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].identity, KUBE_DNS);
}

#[test]
fn learned_ips_arrive_and_leave_through_the_selector_cache_and_deltas() {
    let policy = compiled(POLICY);
    let all = identities();
    let mut cache = SelectorCache::new(all.clone());
    assert_eq!(
        cache.select(&FqdnSelector::name("api.github.com").selector()),
        [GITHUB]
    );
    assert_eq!(policy.resolve_cached(&mut cache), policy.resolve(&all));

    let mut without = all.clone();
    let github = without.remove(&GITHUB).unwrap();
    let before = policy.resolve(&without).map_state;
    let after = policy.resolve(&all).map_state;
    let (upserts, deletes) = policy.identity_delta(GITHUB, &github, true);
    assert!(deletes.is_empty());
    let mut grown = before.clone();
    grown.extend(upserts);
    assert_eq!(grown, after);
    let (_, deletes) = policy.identity_delta(GITHUB, &github, false);
    let mut shrunk = after;
    for key in deletes {
        shrunk.remove(&key);
    }
    assert_eq!(shrunk, before);
}
