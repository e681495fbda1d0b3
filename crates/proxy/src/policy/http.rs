//! HTTP rules compiled for matching. Paths of all rules go into one
//! `RegexSet`, so a request's path is scanned once whatever the rule count;
//! only the rules whose path matched are checked further.

use ::policy::l7::split_header_rule;
use ::policy::HttpRule;
use regex::{Regex, RegexSet};

/// The parts of a request the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequestView<'a> {
    pub method: &'a str,
    /// Request target as sent (origin form; includes the query, as Envoy's `:path`).
    pub path: &'a str,
    pub host: Option<&'a str>,
    pub headers: &'a [(String, String)],
}

impl<'a> HttpRequestView<'a> {
    pub fn new(
        method: &'a str,
        path: &'a str,
        host: Option<&'a str>,
        headers: &'a [(String, String)],
    ) -> Self {
        HttpRequestView {
            method,
            path,
            host,
            headers,
        }
    }
}

#[derive(Debug)]
struct HeaderMatch {
    name: String,
    value: Option<Regex>,
}

#[derive(Debug)]
struct CompiledHttpRule {
    method: Option<Regex>,
    host: Option<Regex>,
    headers: Vec<HeaderMatch>,
}

/// Rules of one identity entry; a request is allowed when any rule matches.
#[derive(Debug)]
pub struct HttpMatcher {
    rules: Vec<CompiledHttpRule>,
    /// Patterns of the rules with a `path`; `path_rule[i]` = rule index.
    paths: RegexSet,
    path_rule: Vec<usize>,
    /// Rules without a `path` (every path is a candidate).
    pathless: Vec<usize>,
}

/// Whole-value match: Cilium's regexes are anchored at both ends.
fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

fn compile_regex(field: String, pattern: &str) -> Result<Regex, (String, String)> {
    Regex::new(&anchored(pattern)).map_err(|err| (field, err.to_string()))
}

impl HttpMatcher {
    /// Errors carry (`http[i].field`, message).
    pub fn compile(rules: &[HttpRule]) -> Result<Self, (String, String)> {
        let mut compiled = Vec::with_capacity(rules.len());
        let mut patterns = Vec::new();
        let mut path_rule = Vec::new();
        let mut pathless = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            let field = |name: &str| format!("http[{index}].{name}");
            match &rule.path {
                Some(path) => {
                    compile_regex(field("path"), path)?;
                    patterns.push(anchored(path));
                    path_rule.push(index);
                }
                None => pathless.push(index),
            }
            let method = rule
                .method
                .as_deref()
                .map(|m| compile_regex(field("method"), m))
                .transpose()?;
            let host = rule
                .host
                .as_deref()
                .map(|h| compile_regex(field("host"), h))
                .transpose()?;
            let mut headers = Vec::new();
            for (header_index, header) in rule.headers.iter().enumerate() {
                let (name, value) = split_header_rule(header);
                let value = value
                    .map(|v| compile_regex(field(&format!("headers[{header_index}]")), v))
                    .transpose()?;
                headers.push(HeaderMatch {
                    name: name.to_ascii_lowercase(),
                    value,
                });
            }
            compiled.push(CompiledHttpRule {
                method,
                host,
                headers,
            });
        }
        let paths =
            RegexSet::new(&patterns).map_err(|err| ("http".to_string(), err.to_string()))?;
        Ok(HttpMatcher {
            rules: compiled,
            paths,
            path_rule,
            pathless,
        })
    }

    pub fn matches(&self, request: &HttpRequestView<'_>) -> bool {
        let by_path = self
            .paths
            .matches(request.path)
            .into_iter()
            .map(|i| self.path_rule[i]);
        self.pathless
            .iter()
            .copied()
            .chain(by_path)
            .any(|index| self.rules[index].matches_rest(request))
    }
}

impl CompiledHttpRule {
    fn matches_rest(&self, request: &HttpRequestView<'_>) -> bool {
        if self
            .method
            .as_ref()
            .is_some_and(|m| !m.is_match(request.method))
        {
            return false;
        }
        if let Some(host) = &self.host {
            if !request.host.is_some_and(|value| host.is_match(value)) {
                return false;
            }
        }
        self.headers.iter().all(|wanted| {
            request.headers.iter().any(|(name, value)| {
                name.eq_ignore_ascii_case(&wanted.name)
                    && wanted
                        .value
                        .as_ref()
                        .is_none_or(|v| v.is_match(value.trim()))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(json: &str) -> HttpMatcher {
        let rules: Vec<HttpRule> = serde_json::from_str(json).unwrap();
        HttpMatcher::compile(&rules).unwrap()
    }

    fn get(path: &str) -> HttpRequestView<'_> {
        HttpRequestView::new("GET", path, Some("deathstar"), &[])
    }

    #[test]
    fn paths_are_anchored() {
        let m = matcher(r#"[{"path": "/public"}, {"path": "/v1/.*", "method": "POST"}]"#);
        assert!(m.matches(&get("/public")));
        assert!(!m.matches(&get("/publicity")));
        assert!(!m.matches(&get("/x/public")));
        assert!(!m.matches(&get("/v1/x")));
        assert!(m.matches(&HttpRequestView::new("POST", "/v1/x", None, &[])));
        assert!(!m.matches(&HttpRequestView::new("POSTX", "/v1/x", None, &[])));
    }

    #[test]
    fn host_and_headers() {
        let m = matcher(
            r#"[{"host": "api\\.example\\.com", "headers": ["X-Token: [0-9]+", "X-Present"]}]"#,
        );
        let headers = vec![
            ("x-token".to_string(), "123".to_string()),
            ("X-Present".to_string(), String::new()),
        ];
        assert!(m.matches(&HttpRequestView::new(
            "GET",
            "/",
            Some("api.example.com"),
            &headers
        )));
        assert!(!m.matches(&HttpRequestView::new(
            "GET",
            "/",
            Some("apixexample.com"),
            &headers
        )));
        assert!(!m.matches(&HttpRequestView::new("GET", "/", None, &headers)));
        let bad_token = vec![
            ("X-Token".to_string(), "12a".to_string()),
            ("X-Present".to_string(), "1".to_string()),
        ];
        assert!(!m.matches(&HttpRequestView::new(
            "GET",
            "/",
            Some("api.example.com"),
            &bad_token
        )));
        let literal = matcher(r#"[{"headers": ["X-Mode: strict"]}]"#);
        let strict = vec![("X-Mode".to_string(), "strict".to_string())];
        let stricter = vec![("X-Mode".to_string(), "stricter".to_string())];
        assert!(literal.matches(&HttpRequestView::new("GET", "/", None, &strict)));
        assert!(!literal.matches(&HttpRequestView::new("GET", "/", None, &stricter)));
    }

    #[test]
    fn empty_rule_matches_everything() {
        let m = matcher(r#"[{}]"#);
        assert!(m.matches(&get("/anything")));
    }
}
