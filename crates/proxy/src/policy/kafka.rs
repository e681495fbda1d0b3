//! Kafka rules compiled for matching. A request naming topics is allowed only
//! if every topic is allowed by some rule that also matches the request's API
//! key, version and client id; a topic-less request (ApiVersions,
//! FindCoordinator, ...) needs a rule matching key, version and client id.

use ::policy::l7::kafka_api_key;
use ::policy::KafkaRule;

/// The parts of a Kafka request the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct KafkaRequestView<'a> {
    pub api_key: i16,
    pub api_version: i16,
    pub client_id: Option<&'a str>,
    pub topics: &'a [String],
    /// False when the request may name topics that could not be parsed:
    /// then only rules without a `topic` can allow it.
    pub topics_known: bool,
}

#[derive(Debug)]
struct CompiledKafkaRule {
    /// None = any key.
    api_keys: Option<Vec<i16>>,
    api_version: Option<i16>,
    client_id: Option<String>,
    topic: Option<String>,
}

#[derive(Debug)]
pub struct KafkaMatcher {
    rules: Vec<CompiledKafkaRule>,
}

impl KafkaMatcher {
    /// Rules must have been validated (unknown keys/versions are skipped).
    pub fn compile(rules: &[KafkaRule]) -> Self {
        let rules = rules
            .iter()
            .map(|rule| CompiledKafkaRule {
                api_keys: match (&rule.role, &rule.api_key) {
                    (Some(role), _) => Some(role.api_keys().to_vec()),
                    (None, Some(key)) => Some(kafka_api_key(key).into_iter().collect()),
                    (None, None) => None,
                },
                api_version: rule
                    .api_version
                    .as_deref()
                    .and_then(|v| v.trim().parse().ok()),
                client_id: rule.client_id.clone(),
                topic: rule.topic.clone(),
            })
            .collect();
        KafkaMatcher { rules }
    }

    pub fn allows(&self, request: &KafkaRequestView<'_>) -> bool {
        let candidates = || {
            self.rules
                .iter()
                .filter(|rule| rule.matches_header(request))
        };
        if !request.topics_known {
            return candidates().any(|rule| rule.topic.is_none());
        }
        if request.topics.is_empty() {
            return candidates().next().is_some();
        }
        request
            .topics
            .iter()
            .all(|topic| candidates().any(|rule| rule.topic.as_deref().is_none_or(|t| t == topic)))
    }
}

impl CompiledKafkaRule {
    fn matches_header(&self, request: &KafkaRequestView<'_>) -> bool {
        self.api_keys
            .as_ref()
            .is_none_or(|keys| keys.contains(&request.api_key))
            && self.api_version.is_none_or(|v| v == request.api_version)
            && self
                .client_id
                .as_deref()
                .is_none_or(|id| request.client_id == Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(json: &str) -> KafkaMatcher {
        KafkaMatcher::compile(&serde_json::from_str::<Vec<KafkaRule>>(json).unwrap())
    }

    fn request(api_key: i16, topics: &[&str]) -> (i16, Vec<String>) {
        (api_key, topics.iter().map(|t| t.to_string()).collect())
    }

    fn allows(m: &KafkaMatcher, (api_key, topics): &(i16, Vec<String>)) -> bool {
        m.allows(&KafkaRequestView {
            api_key: *api_key,
            api_version: 3,
            client_id: Some("rdkafka"),
            topics,
            topics_known: true,
        })
    }

    #[test]
    fn produce_role_expands_and_topics_must_all_be_allowed() {
        let m = matcher(r#"[{"role": "produce", "topic": "allowed"}]"#);
        assert!(allows(&m, &request(0, &["allowed"])));
        assert!(allows(&m, &request(3, &["allowed"])));
        assert!(allows(&m, &request(18, &[])));
        assert!(!allows(&m, &request(0, &["denied"])));
        assert!(!allows(&m, &request(0, &["allowed", "denied"])));
        assert!(!allows(&m, &request(1, &["allowed"])));
    }

    #[test]
    fn topics_can_be_allowed_by_different_rules() {
        let m =
            matcher(r#"[{"role": "consume", "topic": "a"}, {"role": "consume", "topic": "b"}]"#);
        assert!(allows(&m, &request(1, &["a", "b"])));
        assert!(allows(&m, &request(11, &[])));
        assert!(!allows(&m, &request(0, &["a"])));
    }

    #[test]
    fn api_key_version_and_client_id() {
        let m = matcher(r#"[{"apiKey": "fetch", "apiVersion": "3", "clientID": "rdkafka"}]"#);
        assert!(allows(&m, &request(1, &["x"])));
        let other = matcher(r#"[{"apiKey": "fetch", "clientID": "other"}]"#);
        assert!(!allows(&other, &request(1, &["x"])));
        let version = matcher(r#"[{"apiKey": "fetch", "apiVersion": "4"}]"#);
        assert!(!allows(&version, &request(1, &["x"])));
    }
}
