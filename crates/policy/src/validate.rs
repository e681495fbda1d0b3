//! Semantic checks on a rule that its types cannot express: well-formed
//! selectors, numeric ports, parseable labels. Every error carries the field path
//! (`ingress[0].toPorts[0].ports[0].port`) so users can find the mistake.

use crate::rule::{PeerRule, PortRule, Rule};
use crate::selector::EndpointSelector;

/// A rule that is not valid; `path` is relative to the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RuleError {
    pub path: String,
    pub message: String,
}

impl RuleError {
    fn new(path: String, message: impl ToString) -> Self {
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
        for (index, element) in self.ingress.iter().flatten().enumerate() {
            check_peer_rule(&format!("ingress[{index}]"), "fromEndpoints", element)?;
        }
        for (index, element) in self.egress.iter().flatten().enumerate() {
            check_peer_rule(&format!("egress[{index}]"), "toEndpoints", element)?;
        }
        Ok(())
    }
}

fn check_selector(path: &str, selector: &EndpointSelector) -> Result<(), RuleError> {
    selector
        .validate()
        .map_err(|err| RuleError::new(format!("{path}.{}", err.field), err.message))
}

fn check_peer_rule(
    path: &str,
    selectors_field: &str,
    element: &impl PeerRule,
) -> Result<(), RuleError> {
    for (index, selector) in element
        .endpoint_selectors()
        .into_iter()
        .flatten()
        .enumerate()
    {
        check_selector(&format!("{path}.{selectors_field}[{index}]"), selector)?;
    }
    for (index, port_rule) in element.port_rules().into_iter().flatten().enumerate() {
        check_port_rule(&format!("{path}.toPorts[{index}]"), port_rule)?;
    }
    Ok(())
}

fn check_port_rule(path: &str, port_rule: &PortRule) -> Result<(), RuleError> {
    // Cilium allows a port-less entry only together with L7 rules or SNI, which
    // come later; until then it would allow nothing and is most likely a mistake.
    if port_rule.ports.is_empty() {
        return Err(RuleError::new(
            format!("{path}.ports"),
            "must list at least one port",
        ));
    }
    for (index, port) in port_rule.ports.iter().enumerate() {
        port.port_number()
            .map_err(|err| RuleError::new(format!("{path}.ports[{index}].port"), err))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<(), RuleError> {
        serde_json::from_str::<Rule>(json).unwrap().validate()
    }

    #[test]
    fn accepts_a_typical_rule() {
        let rule = r#"{"endpointSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "fe"}}],
                         "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}],
            "egress": [{"toEndpoints": [{}]}]}"#;
        assert_eq!(validate(rule), Ok(()));
    }

    #[test]
    fn names_the_bad_port() {
        let rule = r#"{"endpointSelector": {}, "egress": [{},
            {"toPorts": [{"ports": [{"port": "53"}, {"port": "dns"}]}]}]}"#;
        let err = validate(rule).unwrap_err();
        assert_eq!(err.path, "egress[1].toPorts[0].ports[1].port");
        assert!(err.message.contains("named ports"), "{err}");
    }

    #[test]
    fn names_the_bad_selector_expression() {
        let rule = r#"{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{},
            {"matchExpressions": [{"key": "app", "operator": "In"}]}]}]}"#;
        let err = validate(rule).unwrap_err();
        assert_eq!(
            err.to_string(),
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
}
