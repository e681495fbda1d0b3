use super::*;
use crate::ports::Protocol;

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
        "expected a list of rules, a rule or a policy object, found a number"
    );
    assert_eq!(
        error("\"x\""),
        "expected a list of rules, a rule or a policy object, found a string"
    );
    assert_eq!(
        error("endpointSelector: {}\n---\ntrue\n"),
        "document 2: expected a list of rules, a rule or a policy object, found a boolean"
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
        r#"rule 1: ingress[0].toPorts[0].ports[0].protocol: unknown protocol "TCPX" (expected TCP, UDP, SCTP or ANY)"#
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
        "- endpointSelector: {}\n  egress:\n  - toPorts:\n    - ports:\n      - port: http_x\n",
    );
    assert!(
        message.starts_with("rule 0: egress[0].toPorts[0].ports[0].port: "),
        "{message}"
    );
    assert!(
        message.contains("neither a number 0-65535 nor a port name"),
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
        Err(PolicyError::Invalid { ref location, .. }) if location == "rule 1"
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

#[test]
fn multi_document_rules_are_counted_per_document() {
    let text =
        "- endpointSelector: {}\n---\n- endpointSelector: {}\n- endpointSelector: {}\n  bogus: 1\n";
    assert!(
        error(text).starts_with("rule 1 (document 2): bogus: unknown field `bogus`"),
        "{}",
        error(text)
    );
}

#[test]
fn mixes_every_input_form() {
    let text = r#"
- endpointSelector: {}
---
endpointSelector: {}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a, namespace: x}
spec: {endpointSelector: {}}
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: b}
specs: [{endpointSelector: {}}, {endpointSelector: {}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c}
spec: {podSelector: {}}
---
apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: d, namespace: y}
  spec: {podSelector: {}}
- apiVersion: cilium.io/v2
  kind: CiliumNetworkPolicy
  metadata: {name: e}
  spec: {endpointSelector: {}}
"#;
    let rules = parse_rules(text).unwrap();
    assert_eq!(rules.len(), 8);
    let names: Vec<Option<&String>> = rules
        .iter()
        .map(|rule| {
            rule.labels
                .iter()
                .find(|l| l.starts_with("k8s:io.cilium.k8s.policy.name="))
        })
        .collect();
    assert_eq!(names.iter().filter(|name| name.is_some()).count(), 6);
    assert!(rules[6]
        .labels
        .contains(&"k8s:io.cilium.k8s.policy.namespace=y".to_string()));
    // JSON objects work too.
    let json = r#"{"apiVersion": "v1", "kind": "List", "items": []}"#;
    assert_eq!(parse_rules(json).unwrap(), vec![]);
}

#[test]
fn object_errors_name_kind_list_item_and_document() {
    assert_eq!(
        error("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"),
        r#"Pod "p": kind: "Pod" is not supported (expected CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy, NetworkPolicy or List)"#
    );
    let text = "endpointSelector: {}\n---\nkind: List\nitems:\n- kind: NetworkPolicy\n  metadata: {name: ok}\n  spec: {podSelector: {}}\n- kind: NetworkPolicy\n  metadata: {name: bad}\n  spec: {podSelector: {}, ingress: [{ports: [{port: 0, endPort: 5}]}]}\n";
    assert_eq!(
        error(text),
        r#"NetworkPolicy "bad" (document 2, items[1]): spec.ingress[0].ports[0].endPort: 5: a range needs a non-zero port (port 0 already means every port)"#
    );
    assert!(error("kind: List\nitems: [{endpointSelector: {}}]\n")
        .starts_with("item (items[0]): expected a policy object"));
}

/// `count` rules as a YAML list, each with a multi-line description (a
/// block scalar and a quoted scalar spanning lines) around its CIDR.
fn big_yaml_list(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "- endpointSelector:\n    matchLabels: {{app: client}}\n  description: |\n    rule {i}\n    - not an entry\n  egress:\n  - toCIDR: [\"10.{}.{}.{}/32\"]\n  labels: [\"k8s:rule=r{i}\"]\n",
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255
            )
        })
        .collect()
}

#[test]
fn a_big_yaml_list_reads_the_same_in_pieces() {
    let text = big_yaml_list(5_000);
    assert!(text.len() > PARALLEL_YAML_BYTES);
    let rules = parse_rules(&text).unwrap();
    assert_eq!(rules.len(), 5_000);
    let careful: Vec<Rule> = serde_yaml::from_str(&text).unwrap();
    assert_eq!(rules, careful);
    assert_eq!(
        rules[4_999].description.as_deref(),
        Some("rule 4999\n- not an entry\n")
    );
    // A quoted scalar spanning a cut, or anything else a piece cannot
    // read, sends the text the careful way, with the same answer.
    let quoted = text.replacen(
        "  description: |\n    rule 2500\n    - not an entry\n",
        "  description: \"rule 2500\n\n- not an entry\"\n",
        1,
    );
    let rules = parse_rules(&quoted).unwrap();
    assert_eq!(rules.len(), 5_000);
    assert_eq!(
        rules[2_500].description.as_deref(),
        Some("rule 2500\n- not an entry")
    );
}

#[test]
fn a_big_yaml_list_with_a_bad_rule_names_it() {
    let text = big_yaml_list(5_000).replace("10.0.19.135/32", "10.0.19.135/33");
    assert_eq!(
        error(&text),
        "rule 4999: egress[0].toCIDR[0]: \"10.0.19.135/33\": prefix length must be 0-32"
    );
}

#[test]
fn a_yaml_scalar_is_typed_in_a_list_as_in_a_single_rule() {
    for text in [
        "- endpointSelector: {matchLabels: {a: 5}}\n",
        "endpointSelector: {matchLabels: {a: 5}}\n",
        "- endpointSelector: {matchLabels: {a: null}}\n",
        "- endpointSelector: {}\n  description: 5\n",
    ] {
        assert!(parse_rules(text).is_err(), "{text:?} must be refused");
    }
    let quoted = parse_rules("- endpointSelector: {matchLabels: {a: \"5\"}}\n").unwrap();
    assert_eq!(quoted.len(), 1);
}

#[test]
fn a_json_array_is_no_object_in_a_list_as_in_a_single_rule() {
    for text in [
        r#"[{"endpointSelector": [null, null]}]"#,
        r#"{"endpointSelector": [null, null]}"#,
        r#"[{"endpointSelector": {"matchLabels": {"a": 5}}}]"#,
    ] {
        assert!(parse_rules(text).is_err(), "{text:?} must be refused");
    }
}

/// Caught by the parse_rules fuzz target's multi-document check (on a
/// hand-written input): a tagged list of rules was accepted alone (read
/// directly into rules) but refused as "a tagged value" once another document
/// followed it.
#[test]
fn a_tagged_document_reads_as_untagged() {
    let single = "!rules\n- endpointSelector: {}\n";
    assert_eq!(parse_rules(single).unwrap().len(), 1);
    assert_eq!(
        parse_rules(&format!("{single}---\n[]\n")),
        parse_rules(single)
    );
    assert_eq!(
        parse_rules("!rule\nendpointSelector: {}\n").unwrap().len(),
        1
    );
    let object = "!cnp\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n\
                  metadata: {name: a}\nspec: {endpointSelector: {}}\n";
    assert_eq!(parse_rules(object).unwrap().len(), 1);
    assert!(matches!(
        parse_rules("!n 3\n"),
        Err(PolicyError::NotRules {
            found: "a number",
            ..
        })
    ));
}
