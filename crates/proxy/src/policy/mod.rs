//! A redirect's L7 policy compiled for matching: per remote identity, the
//! rules that allow requests (identity 0 = any peer; no rules = allow all, the
//! way an L4-only allow on the same port voids the L7 restriction).

pub mod dns;
pub mod http;
pub mod kafka;

use serde::{Deserialize, Serialize};

pub use self::dns::DnsMatcher;
pub use self::http::{HttpMatcher, HttpRequestView};
pub use self::kafka::{KafkaMatcher, KafkaRequestView};

use ::policy::L7Rules;

/// Identity value meaning "any remote peer" in a redirect's policy list.
pub const ANY_IDENTITY: u32 = 0;

/// Wire form: one entry of a redirect's `policies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityRules {
    /// Remote identity (source on ingress, destination on egress); 0 = any.
    pub identity: u32,
    /// Cilium `rules`; absent = every request of the protocol is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<L7Rules>,
}

/// Why a redirect's rules could not be compiled (index into `policies`).
#[derive(Debug, thiserror::Error)]
#[error("policies[{index}].rules.{field}: {message}")]
pub struct CompileError {
    pub index: usize,
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
struct Entry {
    identity: u32,
    http: Option<HttpMatcher>,
    kafka: Option<KafkaMatcher>,
    dns: Option<DnsMatcher>,
}

/// The compiled policy of one redirect.
#[derive(Debug, Default)]
pub struct CompiledPolicy {
    entries: Vec<Entry>,
}

impl CompiledPolicy {
    pub fn compile(policies: &[IdentityRules]) -> Result<Self, CompileError> {
        let mut entries = Vec::with_capacity(policies.len());
        for (index, entry) in policies.iter().enumerate() {
            let rules = entry.rules.clone().unwrap_or_default();
            rules.validate().map_err(|err| CompileError {
                index,
                field: err.field,
                message: err.message,
            })?;
            let http = match rules.http.as_deref() {
                Some(list) if !list.is_empty() => Some(HttpMatcher::compile(list).map_err(
                    |(field, message)| CompileError {
                        index,
                        field,
                        message,
                    },
                )?),
                _ => None,
            };
            let kafka = match rules.kafka.as_deref() {
                Some(list) if !list.is_empty() => Some(KafkaMatcher::compile(list)),
                _ => None,
            };
            let dns = match rules.dns.as_deref() {
                Some(list) if !list.is_empty() => Some(DnsMatcher::compile(list)),
                _ => None,
            };
            entries.push(Entry {
                identity: entry.identity,
                http,
                kafka,
                dns,
            });
        }
        Ok(CompiledPolicy { entries })
    }

    fn applicable(&self, remote: u32) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(move |entry| entry.identity == ANY_IDENTITY || entry.identity == remote)
    }

    /// True when some entry for `remote` allows the HTTP request.
    pub fn allows_http(&self, remote: u32, request: &HttpRequestView<'_>) -> bool {
        self.applicable(remote)
            .any(|entry| entry.http.as_ref().is_none_or(|m| m.matches(request)))
    }

    /// True when some entry for `remote` allows the Kafka request.
    pub fn allows_kafka(&self, remote: u32, request: &KafkaRequestView<'_>) -> bool {
        self.applicable(remote)
            .any(|entry| entry.kafka.as_ref().is_none_or(|m| m.allows(request)))
    }

    /// True when every name is allowed by some entry for `remote` (each by
    /// any entry). A query without names is allowed only by an entry
    /// without DNS rules: there is nothing to match.
    pub fn allows_dns(&self, remote: u32, names: &[&str]) -> bool {
        if names.is_empty() {
            return self.applicable(remote).any(|entry| entry.dns.is_none());
        }
        names.iter().all(|name| {
            self.applicable(remote)
                .any(|entry| entry.dns.as_ref().is_none_or(|m| m.allows(name)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(json: &str) -> CompiledPolicy {
        let policies: Vec<IdentityRules> = serde_json::from_str(json).unwrap();
        CompiledPolicy::compile(&policies).unwrap()
    }

    #[test]
    fn identities_select_entries_and_empty_rules_allow_all() {
        let policy = compile(
            r#"[{"identity": 100, "rules": {"http": [{"method": "GET"}]}},
                {"identity": 200}]"#,
        );
        let get = HttpRequestView::new("GET", "/", None, &[]);
        let put = HttpRequestView::new("PUT", "/", None, &[]);
        assert!(policy.allows_http(100, &get));
        assert!(!policy.allows_http(100, &put));
        assert!(policy.allows_http(200, &put));
        assert!(!policy.allows_http(300, &get));
        let any = compile(r#"[{"identity": 0, "rules": {"http": [{"path": "/a"}]}}]"#);
        assert!(any.allows_http(12345, &HttpRequestView::new("GET", "/a", None, &[])));
    }

    #[test]
    fn every_query_name_needs_an_allowing_entry() {
        let policy = compile(
            r#"[{"identity": 100, "rules": {"dns": [{"matchName": "a.test"}]}},
                {"identity": 0, "rules": {"dns": [{"matchPattern": "*.b.test"}]}},
                {"identity": 200}]"#,
        );
        assert!(policy.allows_dns(100, &["A.test."]));
        assert!(policy.allows_dns(100, &["a.test", "x.b.test"]));
        assert!(!policy.allows_dns(100, &["a.test", "c.test"]));
        assert!(!policy.allows_dns(300, &["a.test"]));
        assert!(policy.allows_dns(300, &["x.b.test"]));
        assert!(!policy.allows_dns(100, &[]));
        assert!(policy.allows_dns(200, &["anything.test"]));
        assert!(policy.allows_dns(200, &[]));
        let bad = serde_json::from_str::<Vec<IdentityRules>>(
            r#"[{"identity": 1, "rules": {"dns": [{"matchName": "*.x"}]}}]"#,
        )
        .unwrap();
        let err = CompiledPolicy::compile(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with("policies[0].rules.dns[0].matchName"),
            "{err}"
        );
    }

    #[test]
    fn bad_regex_is_reported_with_its_index() {
        let policies: Vec<IdentityRules> = serde_json::from_str(
            r#"[{"identity": 1}, {"identity": 2, "rules": {"http": [{"path": "(("}]}}]"#,
        )
        .unwrap();
        let err = CompiledPolicy::compile(&policies).unwrap_err().to_string();
        assert!(err.starts_with("policies[1].rules.http[0].path"), "{err}");
    }
}
