use super::*;

fn cidr(text: &str) -> Ipv4Cidr {
    text.parse().unwrap()
}

/// A prefix of either family, as rules hold them.
fn any(text: &str) -> Cidr {
    text.parse().unwrap()
}

#[test]
fn parses_normalizes_and_prints() {
    assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
    assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
    assert_eq!(cidr("192.168.1.7").to_string(), "192.168.1.7/32");
    assert_eq!(cidr("0.0.0.0/0").prefix_len(), 0);
    assert_eq!(
        "10.0.0.0/33".parse::<Ipv4Cidr>(),
        Err(CidrError::BadLength("10.0.0.0/33".into()))
    );
    assert_eq!(
        "fd00::/8".parse::<Ipv4Cidr>(),
        Err(CidrError::Ipv6("fd00::/8".into()))
    );
    for bad in ["10.0.0/8", "x", "10.0.0.0/", "10.0.0.0/a", ""] {
        assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
    }
    let json = serde_json::to_string(&cidr("10.0.0.1/24")).unwrap();
    assert_eq!(json, r#""10.0.0.0/24""#);
    assert_eq!(
        serde_json::from_str::<Ipv4Cidr>(&json).unwrap(),
        cidr("10.0.0.0/24")
    );
}

#[test]
fn containment() {
    let ten = cidr("10.0.0.0/8");
    assert!(ten.contains(&cidr("10.1.0.0/16")));
    assert!(ten.contains(&ten));
    assert!(!cidr("10.1.0.0/16").contains(&ten));
    assert!(!ten.contains(&cidr("11.0.0.0/16")));
    assert!(cidr("0.0.0.0/0").contains(&ten));
    assert!(ten.contains_addr("10.255.0.1".parse().unwrap()));
    assert!(!ten.contains_addr("9.255.0.1".parse().unwrap()));
}

#[test]
fn identity_labels_are_the_prefix_and_world() {
    let labels = cidr_identity_labels(cidr("10.1.0.0/16"));
    assert_eq!(
        labels,
        Labels::parse_all(&["cidr:10.1.0.0/16", "reserved:world"]).unwrap()
    );
    // Shorter prefixes select it by containment, longer ones do not.
    for (peer, selected) in [
        ("10.1.0.0/16", true),
        ("10.0.0.0/8", true),
        ("0.0.0.0/0", true),
        ("10.1.2.0/24", false),
        ("10.2.0.0/16", false),
    ] {
        assert_eq!(
            cidr_selector(&any(peer)).matches(&labels),
            selected,
            "{peer}"
        );
    }
    // The label text round-trips through the label parser.
    let label: Label = "cidr:10.0.0.0/8".parse().unwrap();
    assert_eq!(label, Label::new("cidr", "10.0.0.0/8", ""));
    assert_eq!(label.to_string(), "cidr:10.0.0.0/8");
}

#[test]
fn selectors_match_contained_identities_minus_holes() {
    let inner = cidr_identity_labels(cidr("10.1.0.0/16"));
    let hole = cidr_identity_labels(cidr("10.96.0.0/12"));
    let outside = cidr_identity_labels(cidr("192.168.0.0/16"));
    let world = Labels::reserved("world");
    let pod = Labels::parse_all(&["k8s:app=web"]).unwrap();
    let set = CidrRule {
        cidr: any("10.0.0.0/8"),
        except: vec![any("10.96.0.0/12")],
    };
    let selector = set.selector();
    assert!(selector.matches(&inner));
    assert!(!selector.matches(&hole));
    assert!(!selector.matches(&outside));
    assert!(!selector.matches(&world));
    assert!(!selector.matches(&pod));
    let everything = CidrRule {
        cidr: any("0.0.0.0/0"),
        except: vec![any("10.0.0.0/8")],
    }
    .selector();
    assert!(everything.matches(&world));
    assert!(everything.matches(&outside));
    assert!(!everything.matches(&inner));
    assert!(!everything.matches(&pod));
    assert!(cidr_selector(&any("10.1.0.0/16")).matches(&inner));
    assert!(!cidr_selector(&any("10.1.0.0/16")).matches(&hole));
}

#[test]
fn either_family_parses_and_prints_like_cilium() {
    assert_eq!(any("10.1.2.3/8"), Cidr::V4(cidr("10.0.0.0/8")));
    assert_eq!(any("2001:db8::7/32").to_string(), "2001:db8::/32");
    assert_eq!(any("2001:db8::1").to_string(), "2001:db8::1/128");
    assert_eq!(any("::/0").family(), "IPv6");
    assert_eq!(any("::/0").prefix_len(), 0);
    assert_eq!(
        "2001:db8::/129".parse::<Cidr>().unwrap_err().to_string(),
        r#""2001:db8::/129": prefix length must be 0-128"#
    );
    assert_eq!(
        "10.0.0.0/33".parse::<Cidr>().unwrap_err().to_string(),
        r#""10.0.0.0/33": prefix length must be 0-32"#
    );
    assert!("2001:db8:::1".parse::<Cidr>().is_err());
    // An IPv4 prefix type still refuses IPv6.
    assert_eq!(
        "fd00::/8".parse::<Ipv4Cidr>(),
        Err(CidrError::Ipv6("fd00::/8".into()))
    );
    let json = serde_json::to_string(&[any("2001:DB8::1/64"), any("10.0.0.1/24")]).unwrap();
    assert_eq!(json, r#"["2001:db8::/64","10.0.0.0/24"]"#);
    assert_eq!(
        serde_json::from_str::<Vec<Cidr>>(&json).unwrap(),
        vec![any("2001:db8::/64"), any("10.0.0.0/24")]
    );
    // Containment never crosses families.
    assert!(any("2001:db8::/32").contains(&any("2001:db8:1::/48")));
    assert!(!any("::/0").contains(&any("10.0.0.0/8")));
    assert!(!any("0.0.0.0/0").contains(&any("2001:db8::/32")));
}

#[test]
fn ipv6_peers_select_their_cidr_labels_and_no_ipv4_identity() {
    let v4 = cidr_identity_labels(cidr("10.1.0.0/16"));
    let world = Labels::reserved("world");
    // What an IPv6 CIDR identity will carry once the datapath has IPv6.
    let v6_identity = |text: &str| {
        let prefix: Ipv6Cidr = text.parse().unwrap();
        [
            prefix.label(),
            Label::new(SOURCE_RESERVED, "world-ipv6", ""),
        ]
        .into_iter()
        .collect::<Labels>()
    };
    let inner = v6_identity("2001:db8:1::/48");
    let hole = v6_identity("2001:db8:1:2::/64");
    for peer in ["2001:db8::/32", "::/0"] {
        let selector = cidr_selector(&any(peer));
        assert!(!selector.matches(&v4), "{peer}");
        assert!(!selector.matches(&world), "{peer}");
        assert!(selector.matches(&inner), "{peer}");
    }
    assert!(!cidr_selector(&any("2001:db9::/32")).matches(&inner));
    assert_eq!(
        cidr_selector(&any("::/0"))
            .match_labels()
            .keys()
            .next()
            .unwrap(),
        "reserved:world-ipv6"
    );
    assert_eq!(
        cidr_selector(&any("0.0.0.0/0"))
            .match_labels()
            .keys()
            .next()
            .unwrap(),
        "reserved:world"
    );
    let set = CidrRule {
        cidr: any("2001:db8::/32"),
        except: vec![any("2001:db8:1:2::/64")],
    }
    .selector();
    assert!(!set.matches(&hole));
    assert!(set.matches(&v6_identity("2001:db8:1:3::/64")));
    assert!(!set.matches(&v4));
}

#[test]
fn only_ipv4_prefixes_get_identities() {
    let rules = crate::parse::parse_rules(
        r#"[{"endpointSelector": {},
             "egress": [{"toCIDR": ["0.0.0.0/0", "::/0", "10.0.0.0/8", "2001:db8::1"]},
                        {"toCIDRSet": [{"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48"]},
                                       {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}]}]}]"#,
    )
    .unwrap();
    let prefixes: Vec<String> = cidr_prefixes(&rules)
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(prefixes, ["10.0.0.0/8", "192.168.0.0/16", "192.168.1.0/24"]);
    let v6: Vec<String> = cidr_prefixes6(&rules)
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(v6, ["2001:db8::/32", "2001:db8::1/128", "2001:db8:1::/48"]);
    assert_eq!(rule_prefixes(&rules).len(), 6, "both families, no /0");
}

#[test]
fn a_prefix_contains_addresses_of_its_own_family_only() {
    let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
    assert!(any("10.0.0.0/8").contains_ip(ip("10.1.2.3")));
    assert!(!any("10.0.0.0/8").contains_ip(ip("11.0.0.1")));
    assert!(any("2001:db8::/32").contains_ip(ip("2001:db8:5::1")));
    assert!(!any("2001:db8::/32").contains_ip(ip("2001:db9::1")));
    assert!(!any("0.0.0.0/0").contains_ip(ip("::1")));
    assert!(!any("::/0").contains_ip(ip("10.0.0.1")));
    assert_eq!(
        any("2001:db8::/32").label().to_string(),
        "cidr:2001-db8--0/32"
    );
}
