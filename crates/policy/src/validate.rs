//! Semantic checks on a rule that its types cannot express: well-formed
//! selectors (endpoint and FQDN), numeric ports and sane ranges, ICMP types,
//! except prefixes inside their CIDR and of its family, one peer kind per
//! element (as Cilium requires), L7 rules only where the proxy can take them,
//! no `toFQDNs` in deny sections, parseable labels. Every error carries the
//! field path (`ingress[0].toPorts[0].ports[0].endPort`) so users can find the
//! mistake.

use crate::cidr::CidrRule;
use crate::l7::L7Rules;
use crate::mapstate::Direction;
use crate::ports::{IcmpRule, PortProtocol, PortRule, PortSpan, Protocol};
use crate::rule::{PeerRule, Rule, TO_FQDNS};
use crate::selector::EndpointSelector;

/// A rule that is not valid; `path` is relative to the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RuleError {
    pub path: String,
    pub message: String,
}

impl RuleError {
    pub(crate) fn new(path: String, message: impl ToString) -> Self {
        RuleError {
            path,
            message: message.to_string(),
        }
    }
}

impl Rule {
    /// Checks the rule as a whole; the first problem found is the error.
    pub fn validate(&self) -> Result<(), RuleError> {
        check_selector("endpointSelector", &self.endpoint_selector)?;
        for (index, label) in self.labels.iter().enumerate() {
            label
                .parse::<crate::labels::Label>()
                .map_err(|err| RuleError::new(format!("labels[{index}]"), err))?;
        }
        check_section("ingress", self.ingress.as_deref(), false)?;
        check_section("ingressDeny", self.ingress_deny.as_deref(), true)?;
        check_section("egress", self.egress.as_deref(), false)?;
        check_section("egressDeny", self.egress_deny.as_deref(), true)?;
        Ok(())
    }
}

fn check_section<R: PeerRule>(
    name: &str,
    elements: Option<&[R]>,
    deny: bool,
) -> Result<(), RuleError> {
    for (index, element) in elements.into_iter().flatten().enumerate() {
        let path = format!("{name}[{index}]");
        check_peer_rule(&path, element)?;
        if deny {
            check_no_l7(&path, element)?;
            check_no_fqdns(&path, element)?;
        }
    }
    Ok(())
}

pub(crate) fn check_selector(path: &str, selector: &EndpointSelector) -> Result<(), RuleError> {
    selector
        .validate()
        .map_err(|err| RuleError::new(format!("{path}.{}", err.field), err.message))
}

fn check_peer_rule<R: PeerRule>(path: &str, element: &R) -> Result<(), RuleError> {
    let fields = R::FIELDS;
    // Cilium refuses to mix peer kinds in one element; say which two clash.
    let kinds = [
        (
            fields.endpoints,
            element.endpoint_selectors().map_or(0, <[_]>::len),
        ),
        (fields.entities, element.entities().map_or(0, <[_]>::len)),
        (fields.cidr, element.cidrs().map_or(0, <[_]>::len)),
        (fields.cidr_set, element.cidr_sets().map_or(0, <[_]>::len)),
        (TO_FQDNS, element.fqdns().map_or(0, <[_]>::len)),
    ];
    let used: Vec<&str> = kinds
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(name, _)| *name)
        .collect();
    if let [first, second, ..] = used[..] {
        return Err(RuleError::new(
            path.to_string(),
            format!("combining {first} and {second} in one element is not supported; use separate elements"),
        ));
    }
    if element.port_rules().is_some_and(|rules| !rules.is_empty())
        && element.icmp_rules().is_some_and(|rules| !rules.is_empty())
    {
        return Err(RuleError::new(
            format!("{path}.icmps"),
            "icmps cannot be combined with toPorts in one element; use separate elements",
        ));
    }
    for (index, selector) in element
        .endpoint_selectors()
        .into_iter()
        .flatten()
        .enumerate()
    {
        check_selector(&format!("{path}.{}[{index}]", fields.endpoints), selector)?;
    }
    for (index, set) in element.cidr_sets().into_iter().flatten().enumerate() {
        check_cidr_set(&format!("{path}.{}[{index}]", fields.cidr_set), set)?;
    }
    for (index, selector) in element.fqdns().into_iter().flatten().enumerate() {
        selector.validate().map_err(|err| {
            RuleError::new(
                format!("{path}.{TO_FQDNS}[{index}].{}", err.field),
                err.message,
            )
        })?;
    }
    for (index, port_rule) in element.port_rules().into_iter().flatten().enumerate() {
        check_port_rule(
            &format!("{path}.toPorts[{index}]"),
            port_rule,
            fields.direction,
        )?;
    }
    for (index, icmp_rule) in element.icmp_rules().into_iter().flatten().enumerate() {
        check_icmp_rule(&format!("{path}.icmps[{index}]"), icmp_rule)?;
    }
    Ok(())
}

pub(crate) fn check_cidr_set(path: &str, set: &CidrRule) -> Result<(), RuleError> {
    for (index, hole) in set.except.iter().enumerate() {
        if hole.family() != set.cidr.family() {
            return Err(RuleError::new(
                format!("{path}.except[{index}]"),
                format!(
                    "{hole} is an {} prefix but cidr {} is {}; an except must be of its cidr's family",
                    hole.family(),
                    set.cidr,
                    set.cidr.family()
                ),
            ));
        }
        if !set.cidr.contains(hole) {
            return Err(RuleError::new(
                format!("{path}.except[{index}]"),
                format!("{hole} is not inside {}", set.cidr),
            ));
        }
    }
    Ok(())
}

/// A deny is decided per packet in the kernel; requests cannot be denied
/// selectively, so Cilium refuses L7 rules in deny sections.
fn check_no_l7<R: PeerRule>(path: &str, element: &R) -> Result<(), RuleError> {
    for (index, port_rule) in element.port_rules().into_iter().flatten().enumerate() {
        if port_rule.rules.is_some() {
            return Err(RuleError::new(
                format!("{path}.toPorts[{index}].rules"),
                "L7 rules are not allowed in deny rules",
            ));
        }
    }
    Ok(())
}

/// Cilium's deny elements have no `toFQDNs`: a learned IP cannot be denied
/// by name.
fn check_no_fqdns<R: PeerRule>(path: &str, element: &R) -> Result<(), RuleError> {
    if element.fqdns().is_some() {
        return Err(RuleError::new(
            format!("{path}.{TO_FQDNS}"),
            "toFQDNs is not allowed in deny rules (egressDeny takes no DNS names)",
        ));
    }
    Ok(())
}

fn check_port_rule(
    path: &str,
    port_rule: &PortRule,
    direction: Direction,
) -> Result<(), RuleError> {
    // Cilium allows a port-less entry only together with L7 rules or SNI, which
    // come later; until then it would allow nothing and is most likely a mistake.
    if port_rule.ports.is_empty() {
        return Err(RuleError::new(
            format!("{path}.ports"),
            "must list at least one port",
        ));
    }
    // The DNS proxy only sees a pod's own queries.
    if direction == Direction::Ingress && port_rule.rules.as_ref().is_some_and(|r| r.dns.is_some())
    {
        return Err(RuleError::new(
            format!("{path}.rules.dns"),
            "DNS rules are not allowed on ingress",
        ));
    }
    for (index, port) in port_rule.ports.iter().enumerate() {
        let path = format!("{path}.ports[{index}]");
        check_port(&path, port)?;
        if let Some(rules) = &port_rule.rules {
            check_l7_port(&path, port, rules)?;
        }
    }
    Ok(())
}

/// The proxy takes over single ports: like Cilium, L7 rules need a port (not
/// 0, not a range) and TCP; DNS rules also take UDP and ANY (DNS runs over
/// both).
fn check_l7_port(path: &str, port: &PortProtocol, rules: &L7Rules) -> Result<(), RuleError> {
    if rules.dns.is_some() {
        if port.protocol == Protocol::Sctp {
            return Err(RuleError::new(
                format!("{path}.protocol"),
                "DNS rules can only apply to TCP, UDP or ANY (not SCTP)",
            ));
        }
    } else if port.protocol != Protocol::Tcp {
        return Err(RuleError::new(
            format!("{path}.protocol"),
            format!(
                "L7 rules can only apply to TCP (not {})",
                port.protocol.as_str()
            ),
        ));
    }
    if port.port_name().is_some() {
        return Err(RuleError::new(
            format!("{path}.port"),
            "L7 rules need a port number, not a port name",
        ));
    }
    if !matches!(port.span(), Ok(PortSpan::Range(first, last)) if first == last) {
        return Err(RuleError::new(
            path.to_string(),
            "L7 rules need a single port (not 0, not a range)",
        ));
    }
    Ok(())
}

/// Checks `port` and `endPort` of one entry at `path` (shared with the
/// NetworkPolicy reader, whose ports use the same field names). A port may
/// be a name: it resolves per endpoint (ingress: the subject's own ports;
/// egress: each destination's).
pub(crate) fn check_port(path: &str, port: &PortProtocol) -> Result<(), RuleError> {
    if port.port_name().is_some() {
        if port.end_port.is_some_and(|end| end != 0) {
            return Err(RuleError::new(
                format!("{path}.endPort"),
                "cannot be used with a named port",
            ));
        }
        return Ok(());
    }
    port.span().map(|_| ()).map_err(|err| {
        let field = if err.is_end_port() { "endPort" } else { "port" };
        RuleError::new(format!("{path}.{field}"), err)
    })
}

fn check_icmp_rule(path: &str, icmp_rule: &IcmpRule) -> Result<(), RuleError> {
    if icmp_rule.fields.is_empty() {
        return Err(RuleError::new(
            format!("{path}.fields"),
            "must list at least one ICMP type",
        ));
    }
    for (index, field) in icmp_rule.fields.iter().enumerate() {
        let path = format!("{path}.fields[{index}]");
        field
            .protocol()
            .map_err(|err| RuleError::new(format!("{path}.family"), err))?;
        field
            .type_number()
            .map_err(|err| RuleError::new(format!("{path}.type"), err))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<(), RuleError> {
        serde_json::from_str::<Rule>(json).unwrap().validate()
    }

    fn error(json: &str) -> String {
        validate(json).unwrap_err().to_string()
    }

    #[test]
    fn accepts_a_typical_rule() {
        let rule = r#"{"endpointSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "fe"}}],
                         "toPorts": [{"ports": [{"port": "80", "endPort": 88, "protocol": "TCP"}]}]},
                        {"fromCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}]}],
            "ingressDeny": [{"fromEntities": ["world"], "icmps": [{"fields": [{"type": 8}]}]}],
            "egress": [{"toEndpoints": [{}]}]}"#;
        assert_eq!(validate(rule), Ok(()));
    }

    #[test]
    fn l7_rules_need_single_tcp_ports_and_no_deny() {
        let with = |section: &str, ports: &str| {
            error(&format!(
                r#"{{"endpointSelector": {{}}, "{section}": [{{"toPorts": [{{"ports": [{ports}],
                   "rules": {{"http": [{{"method": "GET"}}]}}}}]}}]}}"#
            ))
        };
        assert_eq!(
            with("ingress", r#"{"port": "80"}"#),
            "ingress[0].toPorts[0].ports[0].protocol: L7 rules can only apply to TCP (not ANY)"
        );
        assert_eq!(
            with(
                "egress",
                r#"{"port": "80", "endPort": 90, "protocol": "TCP"}"#
            ),
            "egress[0].toPorts[0].ports[0]: L7 rules need a single port (not 0, not a range)"
        );
        assert_eq!(
            with("ingress", r#"{"port": "0", "protocol": "TCP"}"#),
            "ingress[0].toPorts[0].ports[0]: L7 rules need a single port (not 0, not a range)"
        );
        assert_eq!(
            with("ingressDeny", r#"{"port": "80", "protocol": "TCP"}"#),
            "ingressDeny[0].toPorts[0].rules: L7 rules are not allowed in deny rules"
        );
        let ok = r#"{"endpointSelector": {}, "ingress": [{"toPorts": [{"ports":
            [{"port": "80", "protocol": "TCP"}, {"port": "8080", "protocol": "TCP"}],
            "rules": {"http": [{}]}}]}]}"#;
        assert_eq!(validate(ok), Ok(()));
    }

    #[test]
    fn names_the_bad_port() {
        let rule = r#"{"endpointSelector": {}, "egress": [{},
            {"toPorts": [{"ports": [{"port": "53"}, {"port": "DNS!"}]}]}]}"#;
        let err = validate(rule).unwrap_err();
        assert_eq!(err.path, "egress[1].toPorts[0].ports[1].port");
        assert!(err.message.contains("nor a port name"), "{err}");
    }

    #[test]
    fn names_the_bad_range() {
        assert_eq!(
            error(
                r#"{"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": "80", "endPort": 70}]}]}]}"#
            ),
            "ingress[0].toPorts[0].ports[0].endPort: 70 is below port 80"
        );
        assert_eq!(
            error(
                r#"{"endpointSelector": {}, "egressDeny": [{"toPorts": [{"ports": [{"port": "0", "endPort": 70}]}]}]}"#
            ),
            "egressDeny[0].toPorts[0].ports[0].endPort: 70: a range needs a non-zero port (port 0 already means every port)"
        );
        assert_eq!(
            error(
                r#"{"endpointSelector": {}, "egress": [{"toPorts": [{"ports": [{"port": "80", "endPort": 65536}]}]}]}"#
            ),
            "egress[0].toPorts[0].ports[0].endPort: 65536 is out of range (expected at most 65535)"
        );
    }

    #[test]
    fn names_the_bad_selector_expression() {
        let rule = r#"{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{},
            {"matchExpressions": [{"key": "app", "operator": "In"}]}]}]}"#;
        assert_eq!(
            error(rule),
            "ingress[0].fromEndpoints[1].matchExpressions[0].values: operator In needs at least one value"
        );
        let err = validate(
            r#"{"endpointSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, "endpointSelector.matchExpressions[0].values");
    }

    #[test]
    fn rejects_port_rule_without_ports() {
        let err =
            validate(r#"{"endpointSelector": {}, "ingress": [{"toPorts": [{}]}]}"#).unwrap_err();
        assert_eq!(err.path, "ingress[0].toPorts[0].ports");
    }

    #[test]
    fn rejects_mixed_peer_kinds_and_icmp_with_ports() {
        assert_eq!(
            error(
                r#"{"endpointSelector": {}, "egress": [{"toEndpoints": [{}], "toCIDR": ["10.0.0.0/8"]}]}"#
            ),
            "egress[0]: combining toEndpoints and toCIDR in one element is not supported; use separate elements"
        );
        // Empty lists do not count as a kind.
        assert_eq!(
            validate(
                r#"{"endpointSelector": {}, "egress": [{"toEndpoints": [], "toCIDR": ["10.0.0.0/8"]}]}"#
            ),
            Ok(())
        );
        assert_eq!(
            validate(
                r#"{"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": "80"}]}], "icmps": [{"fields": [{"type": 8}]}]}]}"#
            )
            .unwrap_err()
            .path,
            "ingress[0].icmps"
        );
    }

    #[test]
    fn checks_except_and_icmp_fields() {
        assert_eq!(
            error(
                r#"{"endpointSelector": {}, "ingress": [{"fromCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}]}]}"#
            ),
            "ingress[0].fromCIDRSet[0].except[0]: 11.0.0.0/16 is not inside 10.0.0.0/8"
        );
        assert_eq!(
            validate(r#"{"endpointSelector": {}, "egress": [{"icmps": [{"fields": [{"type": "Ping"}]}]}]}"#)
                .unwrap_err()
                .path,
            "egress[0].icmps[0].fields[0].type"
        );
        assert_eq!(
            validate(r#"{"endpointSelector": {}, "egress": [{"icmps": [{"fields": [{"type": 8, "family": "ipx"}]}]}]}"#)
                .unwrap_err()
                .path,
            "egress[0].icmps[0].fields[0].family"
        );
        assert_eq!(
            validate(r#"{"endpointSelector": {}, "egress": [{"icmps": [{}]}]}"#)
                .unwrap_err()
                .path,
            "egress[0].icmps[0].fields"
        );
    }

    #[test]
    fn fqdn_peers_name_the_selector_and_stand_alone() {
        let egress = |element: &str| {
            validate(&format!(
                r#"{{"endpointSelector": {{}}, "egress": [{{}}, {element}]}}"#
            ))
        };
        assert_eq!(
            egress(r#"{"toFQDNs": [{"matchName": "a.com"}, {"matchPattern": "*.a..com"}]}"#)
                .unwrap_err()
                .to_string(),
            r#"egress[1].toFQDNs[1].matchPattern: "*.a..com" has an empty label"#
        );
        assert_eq!(
            egress(r#"{"toFQDNs": [{}]}"#).unwrap_err().path,
            "egress[1].toFQDNs[0].matchName"
        );
        assert_eq!(
            egress(r#"{"toFQDNs": [{"matchName": "a.com"}], "toCIDR": ["10.0.0.0/8"]}"#)
                .unwrap_err()
                .to_string(),
            "egress[1]: combining toCIDR and toFQDNs in one element is not supported; use separate elements"
        );
        for other in [
            r#""toEndpoints": [{}]"#,
            r#""toEntities": ["world"]"#,
            r#""toCIDRSet": [{"cidr": "10.0.0.0/8"}]"#,
        ] {
            let err = egress(&format!(
                r#"{{"toFQDNs": [{{"matchName": "a.com"}}], {other}}}"#
            ))
            .unwrap_err();
            assert!(err.message.contains("and toFQDNs in one element"), "{err}");
        }
        let with_ports = r#"{"toFQDNs": [{"matchPattern": "*.a.com"}],
            "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}],
                         "rules": {"http": [{"method": "GET"}]}}]}"#;
        assert_eq!(egress(with_ports), Ok(()));
        assert_eq!(egress(r#"{"toFQDNs": [], "toEndpoints": [{}]}"#), Ok(()));
    }

    #[test]
    fn fqdn_peers_are_refused_in_deny_rules() {
        for list in ["[]", r#"[{"matchName": "a.com"}]"#] {
            assert_eq!(
                error(&format!(
                    r#"{{"endpointSelector": {{}}, "egressDeny": [{{"toFQDNs": {list}}}]}}"#
                )),
                "egressDeny[0].toFQDNs: toFQDNs is not allowed in deny rules (egressDeny takes no DNS names)"
            );
        }
        // Ingress elements have no such field at all.
        let err = serde_json::from_str::<Rule>(
            r#"{"endpointSelector": {}, "ingress": [{"toFQDNs": []}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `toFQDNs`"), "{err}");
    }

    #[test]
    fn dns_rules_are_egress_only_on_single_tcp_or_udp_ports() {
        let with = |section: &str, ports: &str| {
            validate(&format!(
                r#"{{"endpointSelector": {{}}, "{section}": [{{"toPorts": [{{"ports": [{ports}],
                   "rules": {{"dns": [{{"matchPattern": "*"}}]}}}}]}}]}}"#
            ))
        };
        for protocol in ["ANY", "UDP", "TCP"] {
            let port = format!(r#"{{"port": "53", "protocol": "{protocol}"}}"#);
            assert_eq!(with("egress", &port), Ok(()), "{protocol}");
        }
        assert_eq!(with("egress", r#"{"port": "53"}"#), Ok(()));
        assert_eq!(
            with("ingress", r#"{"port": "53"}"#)
                .unwrap_err()
                .to_string(),
            "ingress[0].toPorts[0].rules.dns: DNS rules are not allowed on ingress"
        );
        assert_eq!(
            with("egress", r#"{"port": "53", "protocol": "SCTP"}"#)
                .unwrap_err()
                .to_string(),
            "egress[0].toPorts[0].ports[0].protocol: DNS rules can only apply to TCP, UDP or ANY (not SCTP)"
        );
        assert_eq!(
            with("egress", r#"{"port": "53", "endPort": 54}"#)
                .unwrap_err()
                .to_string(),
            "egress[0].toPorts[0].ports[0]: L7 rules need a single port (not 0, not a range)"
        );
        assert_eq!(
            with("egress", r#"{"port": "0", "protocol": "UDP"}"#)
                .unwrap_err()
                .path,
            "egress[0].toPorts[0].ports[0]"
        );
        assert_eq!(
            with("egressDeny", r#"{"port": "53"}"#)
                .unwrap_err()
                .to_string(),
            "egressDeny[0].toPorts[0].rules: L7 rules are not allowed in deny rules"
        );
    }
}
