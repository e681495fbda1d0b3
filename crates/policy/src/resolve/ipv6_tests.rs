//! IPv6 in the policy language (issue 18): policies naming IPv6 prefixes,
//! `world-ipv6` or ICMPv6 import, are checked like IPv4 ones, select the
//! IPv6 outside (identity 10, `reserved:world-ipv6`) where Cilium's dual
//! stack does, and leave every IPv4 verdict as the IPv4 parts alone give.

use super::construct_tests::{resolve_with_cidrs, resolve_with_cidrs_for};
use super::tests::{check, labels, resolve_backend, DB, FRONTEND};
use super::*;
use crate::cidr::Cidr;
use crate::mapstate::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::parse::parse_rules;
use crate::reserved::{IDENTITY_HOST, IDENTITY_REMOTE_NODE, IDENTITY_WORLD, IDENTITY_WORLD_IPV6};
use Direction::{Egress, Ingress};

/// A pod of namespace `default`, where the policy objects below live.
fn default_pod() -> Labels {
    labels(&["k8s:app=backend", "k8s:io.kubernetes.pod.namespace=default"])
}

/// The error text of a policy that must be refused.
fn refused(policy: &str) -> String {
    parse_rules(policy).unwrap_err().to_string()
}

/// cilium-cli's connectivity test "allow all egress", in its shape: pods,
/// every address of both families, and the cluster's entities.
const ALLOW_ALL_EGRESS: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: allow-all-egress
spec:
  endpointSelector: {}
  egress:
  - toEndpoints:
    - {}
  - toCIDR:
    - 0.0.0.0/0
    - ::/0
  - toEntities:
    - cluster
"#;

#[test]
fn cilium_cli_allow_all_egress_imports_and_allows_both_worlds() {
    let rules = parse_rules(ALLOW_ALL_EGRESS).unwrap();
    assert_eq!(
        rules[0].egress.as_ref().unwrap()[1].to_cidr,
        Some(vec![
            "0.0.0.0/0".parse::<Cidr>().unwrap(),
            "::/0".parse().unwrap()
        ])
    );
    let (resolved, ids) = resolve_with_cidrs_for(&default_pod(), ALLOW_ALL_EGRESS, &["8.8.8.0/24"]);
    assert!(resolved.egress_enforced);
    check(
        &resolved,
        &[
            (IDENTITY_WORLD, PROTO_TCP, 443, Egress, true),
            (IDENTITY_WORLD, PROTO_UDP, 53, Egress, true),
            (IDENTITY_WORLD_IPV6, PROTO_TCP, 443, Egress, true),
            (ids["8.8.8.0/24"], PROTO_TCP, 443, Egress, true),
            (DB, PROTO_TCP, 5432, Egress, true),
            (IDENTITY_HOST, PROTO_TCP, 10250, Egress, true),
            (IDENTITY_REMOTE_NODE, PROTO_TCP, 10250, Egress, true),
        ],
    );
    // `::/0` adds the IPv6 outside and nothing an IPv4 packet could match;
    // `0.0.0.0/0` alone leaves the IPv6 outside denied.
    let ipv4_only = ALLOW_ALL_EGRESS.replace("    - ::/0\n", "");
    let (without, _) = resolve_with_cidrs_for(&default_pod(), &ipv4_only, &["8.8.8.0/24"]);
    assert_eq!(ipv4_keys(&resolved), ipv4_keys(&without));
    check(
        &without,
        &[
            (IDENTITY_WORLD, PROTO_TCP, 443, Egress, true),
            (IDENTITY_WORLD_IPV6, PROTO_TCP, 443, Egress, false),
        ],
    );
}

/// The map without the keys of the IPv6 outside.
fn ipv4_keys(resolved: &Resolved) -> crate::mapstate::MapState {
    let mut map = resolved.map_state.clone();
    map.retain(|key, _| key.identity != IDENTITY_WORLD_IPV6);
    map
}

#[test]
fn ipv6_cidr_sets_with_except_leave_ipv4_verdicts_alone() {
    let policy = r#"[{"endpointSelector": {},
        "egress": [{"toCIDRSet": [{"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]},
                                  {"cidr": "::/0", "except": ["fd00::/8", "2001:db8::1"]}]},
                   {"toCIDR": ["2001:db8::/32"], "toPorts": [{"ports": [{"port": "22", "protocol": "TCP"}]}]}],
        "ingressDeny": [{"fromCIDRSet": [{"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48"]}]}],
        "ingress": [{"fromCIDR": ["2001:db8::5"]}, {"fromEndpoints": [{"matchLabels": {"app": "frontend"}}]}]}]"#;
    let (resolved, ids) = resolve_with_cidrs(policy, &["8.8.8.0/24", "10.1.0.0/16"]);
    check(
        &resolved,
        &[
            (IDENTITY_WORLD, PROTO_TCP, 443, Egress, true),
            (ids["8.8.8.0/24"], PROTO_TCP, 443, Egress, true),
            (ids["10.1.0.0/16"], PROTO_TCP, 443, Egress, false),
            (ids["10.1.0.0/16"], PROTO_TCP, 22, Egress, false),
            (FRONTEND, PROTO_TCP, 80, Ingress, true),
            (IDENTITY_WORLD, PROTO_TCP, 80, Ingress, false),
            (IDENTITY_WORLD_IPV6, PROTO_TCP, 443, Egress, true),
            (IDENTITY_WORLD_IPV6, PROTO_TCP, 80, Ingress, false),
        ],
    );
    // Besides the IPv6 outside, no key names an identity the IPv6 parts
    // select (no IPv6 prefix identity was allocated here).
    let ipv4_only = r#"[{"endpointSelector": {},
        "egress": [{"toCIDRSet": [{"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}]},
                   {"toCIDR": [], "toPorts": [{"ports": [{"port": "22", "protocol": "TCP"}]}]}],
        "ingressDeny": [{"fromCIDRSet": []}],
        "ingress": [{"fromCIDR": []}, {"fromEndpoints": [{"matchLabels": {"app": "frontend"}}]}]}]"#;
    let (without, _) = resolve_with_cidrs(ipv4_only, &["8.8.8.0/24", "10.1.0.0/16"]);
    assert_eq!(ipv4_keys(&resolved), without.map_state);
    assert!(resolved.ingress_enforced && resolved.egress_enforced);
}

#[test]
fn cidr_errors_name_the_field() {
    let rule = |element: &str| format!(r#"[{{"endpointSelector": {{}}, "egress": [{element}]}}]"#);
    assert_eq!(
        refused(&rule(
            r#"{"toCIDRSet": [{"cidr": "2001:db8::/32", "except": ["10.0.0.0/8"]}]}"#
        )),
        "rule 0: egress[0].toCIDRSet[0].except[0]: 10.0.0.0/8 is an IPv4 prefix but cidr \
         2001:db8::/32 is IPv6; an except must be of its cidr's family"
    );
    assert_eq!(
        refused(&rule(
            r#"{"toCIDRSet": [{"cidr": "0.0.0.0/0", "except": ["::/0"]}]}"#
        )),
        "rule 0: egress[0].toCIDRSet[0].except[0]: ::/0 is an IPv6 prefix but cidr \
         0.0.0.0/0 is IPv4; an except must be of its cidr's family"
    );
    assert_eq!(
        refused(&rule(
            r#"{"toCIDRSet": [{"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48", "2001:db9::/48"]}]}"#
        )),
        "rule 0: egress[0].toCIDRSet[0].except[1]: 2001:db9::/48 is not inside 2001:db8::/32"
    );
    let err = refused(&rule(r#"{"toCIDR": ["10.0.0.0/8", "2001:db8::/129"]}"#));
    assert!(
        err.contains("egress[0].toCIDR[1]")
            && err.contains(r#""2001:db8::/129": prefix length must be 0-128"#),
        "{err}"
    );
    let err = refused(&rule(r#"{"toCIDRSet": [{"cidr": "2001:db8:::/32"}]}"#));
    assert!(
        err.contains("egress[0].toCIDRSet[0].cidr") && err.contains("is not an IP address"),
        "{err}"
    );
}

#[test]
fn network_policy_ip_blocks_take_ipv6() {
    let policy = |blocks: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: out\n  \
             namespace: default\nspec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n  egress:\n  \
             - to:\n{blocks}    ports:\n    - port: 443\n"
        )
    };
    let both = policy(
        "    - ipBlock:\n        cidr: 8.8.8.0/24\n    - ipBlock:\n        cidr: 2001:db8::/32\n        \
         except: [2001:db8:1::/48]\n",
    );
    let rules = parse_rules(&both).unwrap();
    let set = &rules[0].egress.as_ref().unwrap()[1]
        .to_cidr_set
        .as_ref()
        .unwrap()[0];
    assert_eq!(set.cidr.to_string(), "2001:db8::/32");
    assert_eq!(set.except[0].to_string(), "2001:db8:1::/48");
    let (resolved, ids) = resolve_with_cidrs_for(&default_pod(), &both, &["8.8.8.8"]);
    check(
        &resolved,
        &[
            (ids["8.8.8.0/24"], PROTO_TCP, 443, Egress, true),
            (ids["8.8.8.8/32"], PROTO_TCP, 443, Egress, true),
            (ids["8.8.8.0/24"], PROTO_TCP, 80, Egress, false),
            (IDENTITY_WORLD, PROTO_TCP, 443, Egress, false),
        ],
    );
    let v4 = policy("    - ipBlock:\n        cidr: 8.8.8.0/24\n");
    let (without, _) = resolve_with_cidrs_for(&default_pod(), &v4, &["8.8.8.8"]);
    assert_eq!(resolved.map_state, without.map_state);
    // An IPv6-only NetworkPolicy isolates egress and allows no IPv4 peer.
    let (only_v6, _) = resolve_with_cidrs_for(
        &default_pod(),
        &policy("    - ipBlock:\n        cidr: ::/0\n"),
        &["8.8.8.8"],
    );
    assert!(only_v6.egress_enforced);
    check(&only_v6, &[(IDENTITY_WORLD, PROTO_TCP, 443, Egress, false)]);
    let err = refused(&policy(
        "    - ipBlock:\n        cidr: 2001:db8::/32\n        except: [10.0.0.0/8]\n",
    ));
    assert!(
        err.contains("spec.egress[0].to[0].ipBlock.except[0]")
            && err.contains("must be of its cidr's family"),
        "{err}"
    );
}

#[test]
fn world_is_both_outsides_world_ipv4_and_world_ipv6_one_each() {
    let (v4, ids) = resolve_with_cidrs(
        r#"[{"endpointSelector": {}, "egress": [{"toEntities": ["world-ipv4"]}]},
            {"endpointSelector": {}, "egress": [{"toCIDR": ["8.8.8.0/24"], "toPorts": [{"ports": [{"port": "53"}]}]}]}]"#,
        &[],
    );
    check(
        &v4,
        &[
            (IDENTITY_WORLD, PROTO_TCP, 443, Egress, true),
            (ids["8.8.8.0/24"], PROTO_TCP, 443, Egress, true),
            (DB, PROTO_TCP, 443, Egress, false),
            (IDENTITY_HOST, PROTO_TCP, 443, Egress, false),
            (IDENTITY_WORLD_IPV6, PROTO_TCP, 443, Egress, false),
        ],
    );
    let (world, _) = resolve_with_cidrs(
        r#"[{"endpointSelector": {}, "egress": [{"toEntities": ["world"]}]},
            {"endpointSelector": {}, "egress": [{"toCIDR": ["8.8.8.0/24"], "toPorts": [{"ports": [{"port": "53"}]}]}]}]"#,
        &[],
    );
    assert_eq!(v4.map_state, ipv4_keys(&world));
    check(
        &world,
        &[(IDENTITY_WORLD_IPV6, PROTO_TCP, 443, Egress, true)],
    );
    let (v6, ids) = resolve_with_cidrs(
        r#"[{"endpointSelector": {}, "ingress": [{"fromEntities": ["world-ipv6"]}],
             "egress": [{"toEntities": ["world-ipv6"]}, {"toCIDR": ["8.8.8.0/24"]}]}]"#,
        &[],
    );
    assert!(v6.ingress_enforced && v6.egress_enforced);
    check(
        &v6,
        &[
            (IDENTITY_WORLD, PROTO_TCP, 443, Egress, false),
            (IDENTITY_WORLD_IPV6, PROTO_TCP, 443, Egress, true),
            (IDENTITY_WORLD_IPV6, PROTO_TCP, 80, Ingress, true),
            (ids["8.8.8.0/24"], PROTO_TCP, 443, Egress, true),
            (IDENTITY_WORLD, PROTO_TCP, 80, Ingress, false),
            (ids["8.8.8.0/24"], PROTO_TCP, 80, Ingress, false),
            (FRONTEND, PROTO_TCP, 80, Ingress, false),
        ],
    );
}

#[test]
fn icmpv6_rules_are_checked_and_match_no_ipv4_packet() {
    let resolved = resolve_backend(
        r#"[{"endpointSelector": {}, "ingress": [{"icmps": [{"fields": [
              {"family": "IPv6", "type": "EchoRequest"}, {"family": "IPv6", "type": "NeighborSolicitation"},
              {"family": "IPv6", "type": 2}]}]}],
             "egress": [{"toEndpoints": [{"matchLabels": {"app": "db"}}],
              "icmps": [{"fields": [{"family": "IPv6", "type": "EchoRequest"}, {"type": "EchoRequest"}]}]}]}]"#,
    );
    assert!(resolved.ingress_enforced && resolved.egress_enforced);
    for (protocol, icmp_type, direction, identity) in [
        (PROTO_ICMPV6, 128, Ingress, 0),
        (PROTO_ICMPV6, 135, Ingress, 0),
        (PROTO_ICMPV6, 2, Ingress, 0),
        (PROTO_ICMPV6, 128, Egress, DB),
        (PROTO_ICMP, 8, Egress, DB),
    ] {
        assert!(
            resolved
                .map_state
                .contains_key(&MapKey::port(identity, protocol, icmp_type, direction)),
            "{protocol}/{icmp_type} {direction}"
        );
    }
    check(
        &resolved,
        &[
            // IPv4 echo (ICMP type 8, or 128 as a number) is not allowed in.
            (FRONTEND, PROTO_ICMP, 8, Ingress, false),
            (FRONTEND, PROTO_ICMP, 128, Ingress, false),
            (FRONTEND, PROTO_TCP, 128, Ingress, false),
            // Out, only the IPv4 field matches IPv4 packets.
            (DB, PROTO_ICMP, 8, Egress, true),
            (DB, PROTO_ICMP, 128, Egress, false),
        ],
    );
    let icmp = |field: &str| {
        refused(&format!(
            r#"[{{"endpointSelector": {{}}, "ingress": [{{"icmps": [{{"fields": [{field}]}}]}}]}}]"#
        ))
    };
    // Names are per family: EchoRequest is 128 for IPv6, Echo exists for IPv4 only.
    assert!(icmp(r#"{"family": "IPv6", "type": "Echo"}"#)
        .starts_with(r#"rule 0: ingress[0].icmps[0].fields[0].type: unknown ICMP type "Echo""#),);
    assert!(icmp(r#"{"family": "IPv6", "type": 256}"#)
        .starts_with("rule 0: ingress[0].icmps[0].fields[0].type: type 256 is out of range"));
    assert!(icmp(r#"{"family": "ipv6", "type": 128}"#)
        .starts_with("rule 0: ingress[0].icmps[0].fields[0].family: unknown family"));
}
