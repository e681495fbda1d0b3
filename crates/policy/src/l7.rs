//! L7 rules of a `toPorts` entry (`rules: {http: [...], kafka: [...]}`), as
//! Cilium writes them. The types only describe and validate; matching is the
//! proxy's job (it compiles these into regex sets).
//!
//! Semantics (SEMANTICS.md, L7): `method`, `path` and `host` are extended
//! regular expressions that must match the whole value; a header `Name` must
//! be present, `Name: value` needs a value that fully matches `value`. Kafka
//! `role` expands to API keys (see [`KafkaRole::api_keys`]).

use serde::{Deserialize, Serialize};

use crate::fqdn::FqdnSelector;

/// `toPorts[].rules`: at most one protocol per port rule, like Cilium.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L7Rules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<HttpRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<Vec<KafkaRule>>,
    /// DNS queries allowed through the DNS proxy (Cilium's `PortRuleDNS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<FqdnSelector>>,
}

/// One HTTP rule; every field given must match (absent = any).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `"Name"` (presence) or `"Name: value-regex"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
}

/// One Kafka rule. `role` and `apiKey` exclude each other.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<KafkaRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaRole {
    Produce,
    Consume,
}

/// Kafka API keys by Cilium's lowercase names (`apiKey: "produce"`).
pub const KAFKA_API_KEYS: [(&str, i16); 23] = [
    ("produce", 0),
    ("fetch", 1),
    ("offsets", 2),
    ("metadata", 3),
    ("leaderandisr", 4),
    ("stopreplica", 5),
    ("updatemetadata", 6),
    ("controlledshutdown", 7),
    ("offsetcommit", 8),
    ("offsetfetch", 9),
    ("findcoordinator", 10),
    ("joingroup", 11),
    ("heartbeat", 12),
    ("leavegroup", 13),
    ("syncgroup", 14),
    ("describegroups", 15),
    ("listgroups", 16),
    ("saslhandshake", 17),
    ("apiversions", 18),
    ("createtopics", 19),
    ("deletetopics", 20),
    ("deleterecords", 21),
    ("initproducerid", 22),
];

impl KafkaRole {
    /// The API keys a role allows: produce = Produce, Metadata, ApiVersions;
    /// consume = Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch,
    /// FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, SyncGroup, ApiVersions.
    pub fn api_keys(self) -> &'static [i16] {
        match self {
            KafkaRole::Produce => &[0, 3, 18],
            KafkaRole::Consume => &[1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18],
        }
    }
}

/// Looks up an `apiKey` name (case-insensitive) or a number.
pub fn kafka_api_key(name: &str) -> Option<i16> {
    let name = name.trim();
    if let Ok(number) = name.parse::<i16>() {
        return (number >= 0).then_some(number);
    }
    KAFKA_API_KEYS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(_, key)| *key)
}

/// What is wrong in an L7 rule; `field` is relative to `rules`
/// (`http[0].path`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct L7RuleError {
    pub field: String,
    pub message: String,
}

fn error(field: String, message: impl ToString) -> L7RuleError {
    L7RuleError {
        field,
        message: message.to_string(),
    }
}

/// `deserialize_with` for `PortRule::rules`: a rule that parses is also valid,
/// so a bad regex is refused at import (the message names the field).
pub(crate) fn deserialize_validated<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<L7Rules>, D::Error> {
    let rules = Option::<L7Rules>::deserialize(deserializer)?;
    if let Some(rules) = &rules {
        rules
            .validate()
            .map_err(|err| serde::de::Error::custom(format!("rules.{err}")))?;
    }
    Ok(rules)
}

/// A header rule split into name and optional value pattern. Like Cilium,
/// `"Name: value"` and `"Name value"` both name a value; `"Name"` alone
/// requires presence.
pub fn split_header_rule(text: &str) -> (&str, Option<&str>) {
    let text = text.trim();
    let split = text
        .split_once(':')
        .or_else(|| text.split_once(|c: char| c.is_ascii_whitespace()));
    match split {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (text, None),
    }
}

fn check_regex(field: String, pattern: &str) -> Result<(), L7RuleError> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map(|_| ())
        .map_err(|err| {
            error(
                field,
                format!("invalid regular expression {pattern:?}: {err}"),
            )
        })
}

impl L7Rules {
    /// Checks regexes, header names, Kafka keys, versions and topics.
    pub fn validate(&self) -> Result<(), L7RuleError> {
        let protocols = [
            ("http", self.http.is_some()),
            ("kafka", self.kafka.is_some()),
            ("dns", self.dns.is_some()),
        ];
        let given: Vec<&str> = protocols
            .iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| *name)
            .collect();
        if given.len() > 1 {
            return Err(error(
                given[1].into(),
                format!(
                    "{} rules cannot be combined on one port",
                    given.join(" and ")
                ),
            ));
        }
        for (index, selector) in self.dns.iter().flatten().enumerate() {
            selector
                .validate()
                .map_err(|err| error(format!("dns[{index}].{}", err.field), err.message))?;
        }
        for (index, rule) in self.http.iter().flatten().enumerate() {
            rule.validate(&format!("http[{index}]"))?;
        }
        for (index, rule) in self.kafka.iter().flatten().enumerate() {
            rule.validate(&format!("kafka[{index}]"))?;
        }
        Ok(())
    }
}

impl HttpRule {
    fn validate(&self, path: &str) -> Result<(), L7RuleError> {
        for (name, value) in [
            ("method", &self.method),
            ("path", &self.path),
            ("host", &self.host),
        ] {
            if let Some(pattern) = value {
                check_regex(format!("{path}.{name}"), pattern)?;
            }
        }
        for (index, header) in self.headers.iter().enumerate() {
            let field = format!("{path}.headers[{index}]");
            let (name, value) = split_header_rule(header);
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(error(field, format!("invalid header name in {header:?}")));
            }
            if let Some(value) = value {
                check_regex(field, value)?;
            }
        }
        Ok(())
    }
}

/// RFC 9110 token characters (header names).
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

impl KafkaRule {
    fn validate(&self, path: &str) -> Result<(), L7RuleError> {
        if self.role.is_some() && self.api_key.is_some() {
            return Err(error(
                format!("{path}.apiKey"),
                "role and apiKey cannot both be set",
            ));
        }
        if let Some(key) = &self.api_key {
            if kafka_api_key(key).is_none() {
                return Err(error(
                    format!("{path}.apiKey"),
                    format!("unknown Kafka API key {key:?}"),
                ));
            }
        }
        if let Some(version) = &self.api_version {
            if version.trim().parse::<i16>().map_or(true, |v| v < 0) {
                return Err(error(
                    format!("{path}.apiVersion"),
                    format!("{version:?} is not a version number (expected 0-32767)"),
                ));
            }
        }
        if let Some(topic) = &self.topic {
            let valid_chars = topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
            if topic.is_empty() || topic.len() > 255 || !valid_chars {
                return Err(error(
                    format!("{path}.topic"),
                    format!("invalid topic {topic:?} (1-255 of [a-zA-Z0-9._-])"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cilium_spelling_round_trips() {
        let text = r#"{"http":[{"method":"GET","path":"/public/.*","headers":["X-Token: [0-9]+","X-Present"]}]}"#;
        let rules: L7Rules = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&rules).unwrap(), text);
        rules.validate().unwrap();
        let text = r#"{"kafka":[{"role":"produce","topic":"empire-announce"},{"apiKey":"fetch","apiVersion":"4","clientID":"c1"}]}"#;
        let rules: L7Rules = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&rules).unwrap(), text);
        rules.validate().unwrap();
    }

    #[test]
    fn invalid_rules_name_the_field() {
        let bad = |text: &str| {
            serde_json::from_str::<L7Rules>(text)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert!(bad(r#"{"http":[{"path":"(("}]}"#).starts_with("http[0].path: invalid regular"));
        assert!(bad(r#"{"http":[{},{"headers":["X-A","Bad Name: x"]}]}"#)
            .starts_with("http[1].headers[1]"));
        assert!(bad(r#"{"kafka":[{"role":"produce","apiKey":"fetch"}]}"#)
            .starts_with("kafka[0].apiKey"));
        assert!(bad(r#"{"kafka":[{"apiKey":"nope"}]}"#).contains("unknown Kafka API key"));
        assert!(bad(r#"{"kafka":[{"apiVersion":"x"}]}"#).starts_with("kafka[0].apiVersion"));
        assert!(bad(r#"{"kafka":[{"topic":"a b"}]}"#).starts_with("kafka[0].topic"));
        assert!(bad(r#"{"http":[],"kafka":[]}"#).contains("cannot be combined"));
        assert!(bad(r#"{"dns":[{"matchPattern":"a..com"}]}"#).starts_with("dns[0].matchPattern"));
        assert!(bad(r#"{"http":[],"dns":[]}"#).contains("http and dns rules cannot be combined"));
        assert!(serde_json::from_str::<L7Rules>(r#"{"dns":[{"matchRegex":"x"}]}"#).is_err());
    }

    #[test]
    fn port_rules_carry_validated_l7_rules() {
        let text = r#"{"ports":[{"port":"80","protocol":"TCP"}],"rules":{"http":[{"method":"GET","path":"/public"}]}}"#;
        let rule: crate::PortRule = serde_json::from_str(text).unwrap();
        assert_eq!(rule.rules.as_ref().unwrap().http.as_ref().unwrap().len(), 1);
        assert_eq!(serde_json::to_string(&rule).unwrap(), text);
        let plain: crate::PortRule = serde_json::from_str(r#"{"ports":[{"port":"80"}]}"#).unwrap();
        assert_eq!(plain.rules, None);
        let bad = r#"{"ports":[{"port":"80"}],"rules":{"http":[{"path":"(("}]}}"#;
        let err = serde_json::from_str::<crate::PortRule>(bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rules.http[0].path: invalid regular expression"),
            "{err}"
        );
    }

    #[test]
    fn api_keys_and_roles() {
        assert_eq!(kafka_api_key("Produce"), Some(0));
        assert_eq!(kafka_api_key("apiversions"), Some(18));
        assert_eq!(kafka_api_key("3"), Some(3));
        assert_eq!(kafka_api_key("-1"), None);
        assert!(KafkaRole::Consume.api_keys().contains(&1));
        assert!(!KafkaRole::Produce.api_keys().contains(&1));
        assert_eq!(
            split_header_rule("X-Token: [0-9]+"),
            ("X-Token", Some("[0-9]+"))
        );
        assert_eq!(split_header_rule("X-Token"), ("X-Token", None));
        assert_eq!(split_header_rule("X-Token 42"), ("X-Token", Some("42")));
    }
}
