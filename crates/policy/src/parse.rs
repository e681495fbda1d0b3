//! Reading rules from the text a user imports: JSON or YAML, a list of rules or a
//! single rule. All-or-nothing: one bad rule fails the whole input, and the error
//! names the rule's index and the field path inside it.

use serde::Deserializer;

use crate::rule::Rule;

/// Why policy text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is empty")]
    Empty,
    #[error("policy is not valid {format}: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
    #[error("expected a list of rules or a single rule object, found {found}")]
    NotRules { found: &'static str },
    #[error("rule {index}: {}{message}", path_prefix(.path))]
    InvalidRule {
        index: usize,
        /// Field path inside the rule; empty when the rule itself is at fault.
        path: String,
        message: String,
    },
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// Parses and validates Cilium rules from JSON or YAML text.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, PolicyError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(PolicyError::Empty);
    }
    let rules = if trimmed.starts_with('[') || trimmed.starts_with('{') {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => rules_from_json(value)?,
            // YAML flow style also starts with a bracket; only if that fails too was
            // it really meant as (broken) JSON.
            Err(json_error) => match yaml_documents(text) {
                Ok(documents) => rules_from_yaml(documents)?,
                Err(_) => {
                    return Err(PolicyError::Syntax {
                        format: "JSON",
                        message: json_error.to_string(),
                    })
                }
            },
        }
    } else {
        let documents = yaml_documents(text).map_err(|err| PolicyError::Syntax {
            format: "YAML",
            message: err.to_string(),
        })?;
        rules_from_yaml(documents)?
    };
    for (index, rule) in rules.iter().enumerate() {
        rule.validate().map_err(|err| PolicyError::InvalidRule {
            index,
            path: err.path,
            message: err.message,
        })?;
    }
    Ok(rules)
}

/// Every non-empty document of a (possibly multi-document) YAML stream.
fn yaml_documents(text: &str) -> Result<Vec<serde_yaml::Value>, serde_yaml::Error> {
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value: serde_yaml::Value = serde::Deserialize::deserialize(document)?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

fn rules_from_json(value: serde_json::Value) -> Result<Vec<Rule>, PolicyError> {
    let elements = match value {
        serde_json::Value::Array(elements) => elements,
        object @ serde_json::Value::Object(_) => vec![object],
        other => {
            return Err(PolicyError::NotRules {
                found: json_kind(&other),
            })
        }
    };
    elements
        .into_iter()
        .enumerate()
        .map(|(index, element)| deserialize_rule(index, element))
        .collect()
}

fn rules_from_yaml(documents: Vec<serde_yaml::Value>) -> Result<Vec<Rule>, PolicyError> {
    if documents.is_empty() {
        return Err(PolicyError::Empty);
    }
    let mut elements = Vec::new();
    for document in documents {
        match document {
            serde_yaml::Value::Sequence(items) => elements.extend(items),
            mapping @ serde_yaml::Value::Mapping(_) => elements.push(mapping),
            other => {
                return Err(PolicyError::NotRules {
                    found: yaml_kind(&other),
                })
            }
        }
    }
    elements
        .into_iter()
        .enumerate()
        .map(|(index, element)| deserialize_rule(index, element))
        .collect()
}

/// Deserializes one rule, keeping the path of the field that failed.
fn deserialize_rule<'de, D>(index: usize, element: D) -> Result<Rule, PolicyError>
where
    D: Deserializer<'de>,
{
    serde_path_to_error::deserialize(element).map_err(|err| {
        let path = err.path().to_string();
        PolicyError::InvalidRule {
            index,
            // The library prints the rule's own root as ".".
            path: if path == "." { String::new() } else { path },
            message: err.into_inner().to_string(),
        }
    })
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

fn yaml_kind(value: &serde_yaml::Value) -> &'static str {
    match value {
        serde_yaml::Value::Null => "null",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::Protocol;

    fn error(text: &str) -> String {
        parse_rules(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_json_list() {
        let rules = parse_rules(
            r#"[{"endpointSelector": {"matchLabels": {"app": "web"}},
                 "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "fe"}}],
                              "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}],
                 "labels": ["k8s:policy=web"]},
                {"endpointSelector": {}, "egress": [{}]}]"#,
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        let ports = &rules[0].ingress.as_ref().unwrap()[0]
            .to_ports
            .as_ref()
            .unwrap()[0]
            .ports;
        assert_eq!(ports[0].protocol, Protocol::Tcp);
        assert_eq!(rules[0].labels, vec!["k8s:policy=web"]);
    }

    #[test]
    fn parses_single_json_object() {
        let rules = parse_rules(r#"{"endpointSelector": {}}"#).unwrap();
        assert_eq!(rules.len(), 1);
    }

    #[test]
    fn parses_yaml_list_single_and_multi_document() {
        let yaml = "
- endpointSelector:
    matchLabels:
      app: web
  ingress:
  - fromEndpoints:
    - matchLabels:
        k8s:app: fe
    toPorts:
    - ports:
      - port: 80
        protocol: tcp
";
        let rules = parse_rules(yaml).unwrap();
        assert_eq!(rules.len(), 1);
        let port = &rules[0].ingress.as_ref().unwrap()[0]
            .to_ports
            .as_ref()
            .unwrap()[0]
            .ports[0];
        assert_eq!((port.port.as_str(), port.protocol), ("80", Protocol::Tcp));

        assert_eq!(parse_rules("endpointSelector: {}\n").unwrap().len(), 1);
        let multi = "endpointSelector: {}\n---\n- endpointSelector: {}\n- endpointSelector: {}\n";
        assert_eq!(parse_rules(multi).unwrap().len(), 3);
        // YAML flow style that is not JSON.
        assert_eq!(parse_rules("[{endpointSelector: {}}]").unwrap().len(), 1);
    }

    #[test]
    fn empty_list_is_no_rules_but_empty_text_is_an_error() {
        assert_eq!(parse_rules("[]").unwrap(), vec![]);
        assert_eq!(parse_rules("  \n"), Err(PolicyError::Empty));
        assert_eq!(parse_rules("# only a comment\n"), Err(PolicyError::Empty));
    }

    #[test]
    fn malformed_json_names_the_location() {
        let message = error("[{\"endpointSelector\": {\"matchLabels\": {\"app\": \"web\"}}\n");
        assert!(
            message.starts_with("policy is not valid JSON: "),
            "{message}"
        );
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn malformed_yaml_names_the_location() {
        let message = error("endpointSelector:\n  matchLabels: {app: web\ningress: [\n");
        assert!(
            message.starts_with("policy is not valid YAML: "),
            "{message}"
        );
        assert!(message.contains("line"), "{message}");
    }

    #[test]
    fn top_level_must_be_rules() {
        assert_eq!(
            error("42"),
            "expected a list of rules or a single rule object, found a number"
        );
        assert_eq!(
            error("\"x\""),
            "expected a list of rules or a single rule object, found a string"
        );
    }

    #[test]
    fn unknown_field_names_rule_and_path() {
        let message = error(
            r#"[{"endpointSelector": {}},
                {"endpointSelector": {}, "ingress": [{"fromEndpoint": []}]}]"#,
        );
        assert!(message.starts_with("rule 1: ingress[0]"), "{message}");
        assert!(
            message.contains("unknown field `fromEndpoint`"),
            "{message}"
        );
        assert!(message.contains("fromEndpoints"), "{message}");
    }

    #[test]
    fn unknown_field_in_yaml_names_rule_and_path() {
        let yaml = "- endpointSelector: {}\n  egress:\n  - toEndpoints: [{matchLabel: {a: b}}]\n";
        let message = error(yaml);
        assert!(
            message.starts_with("rule 0: egress[0].toEndpoints[0]"),
            "{message}"
        );
        assert!(message.contains("unknown field `matchLabel`"), "{message}");
    }

    #[test]
    fn bad_protocol_names_rule_and_path() {
        let message = error(
            r#"[{"endpointSelector": {}},
                {"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": "80", "protocol": "TCPX"}]}]}]}]"#,
        );
        assert_eq!(
            message,
            r#"rule 1: ingress[0].toPorts[0].ports[0].protocol: unknown protocol "TCPX" (expected TCP, UDP or ANY)"#
        );
    }

    #[test]
    fn bad_port_names_rule_and_path() {
        let message = error(
            r#"[{"endpointSelector": {}, "egress": [{"toPorts": [{"ports": [{"port": "70000"}]}]}]}]"#,
        );
        assert_eq!(
            message,
            r#"rule 0: egress[0].toPorts[0].ports[0].port: port "70000" is out of range (expected 0-65535; 0 means any port)"#
        );
        let message = error(
            "- endpointSelector: {}\n  ingress:\n  - toPorts:\n    - ports:\n      - port: http\n",
        );
        assert!(
            message.starts_with("rule 0: ingress[0].toPorts[0].ports[0].port: "),
            "{message}"
        );
        assert!(
            message.contains("named ports are not supported yet"),
            "{message}"
        );
    }

    #[test]
    fn missing_selector_names_the_rule() {
        assert_eq!(
            error(r#"[{"ingress": []}]"#),
            "rule 0: missing field `endpointSelector`"
        );
        assert!(error(r#"["not a rule"]"#).starts_with("rule 0: invalid type"));
    }

    #[test]
    fn one_bad_rule_fails_all() {
        let text = r#"[{"endpointSelector": {}}, {"endpointSelector": {}, "bogus": 1}]"#;
        assert!(matches!(
            parse_rules(text),
            Err(PolicyError::InvalidRule { index: 1, .. })
        ));
    }

    #[test]
    fn semantic_errors_name_rule_and_path() {
        let text = r#"[{"endpointSelector": {}}, {"endpointSelector": {}},
            {"endpointSelector": {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}}]"#;
        assert_eq!(
            error(text),
            "rule 2: endpointSelector.matchExpressions[0].values: operator NotIn needs at least one value"
        );
    }
}
