//! Reading rules from the text a user imports, JSON or YAML (several documents
//! allowed): a list of Cilium rules, a single rule, `CiliumNetworkPolicy` /
//! `CiliumClusterwideNetworkPolicy` objects (`spec` or `specs`), Kubernetes
//! `NetworkPolicy` objects, and `List`s of objects. All-or-nothing: one bad
//! rule or object fails the whole input, and the error names the document
//! (when there are several), the object or rule, and the field path in it.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::cnp::{self, KIND_CCNP, KIND_CNP};
use crate::k8s::{self, KIND_NETWORK_POLICY};
use crate::rule::Rule;
use crate::validate::RuleError;

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
    #[error("{}expected a list of rules, a rule or a policy object, found {found}", document_prefix(*.document))]
    NotRules {
        /// 1-based, when the input has several documents.
        document: Option<usize>,
        found: &'static str,
    },
    /// A rule or object is not valid. `location` names it: `rule 1`,
    /// `CiliumNetworkPolicy "web" (document 2)`, `NetworkPolicy "db" (items[0])`.
    #[error("{location}: {}{message}", path_prefix(.path))]
    Invalid {
        location: String,
        /// Field path inside the rule or object; empty when it is at fault as a whole.
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

fn document_prefix(document: Option<usize>) -> String {
    document.map_or_else(String::new, |number| format!("document {number}: "))
}

/// A fault inside one rule or object, before it is given a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectError {
    pub path: String,
    pub message: String,
}

impl ObjectError {
    pub(crate) fn new(path: impl Into<String>, message: impl ToString) -> Self {
        ObjectError {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

impl From<RuleError> for ObjectError {
    fn from(err: RuleError) -> Self {
        ObjectError::new(err.path, err.message)
    }
}

/// The part of Kubernetes `metadata` policies use; other fields are ignored.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ObjectMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
}

impl ObjectMeta {
    /// The object's `io.cilium.k8s.policy.uid` rule label, if it has a uid.
    pub(crate) fn uid_label(&self) -> Option<String> {
        crate::policy_labels::uid_label(self.uid.as_deref())
    }

    pub(crate) fn required_name(&self) -> Result<&str, ObjectError> {
        self.name
            .as_deref()
            .filter(|name| !name.is_empty())
            .ok_or_else(|| {
                ObjectError::new("metadata.name", "missing (a policy object needs a name)")
            })
    }

    /// Like Kubernetes: a namespaced object without a namespace is in `default`.
    pub(crate) fn namespace_or_default(&self) -> &str {
        self.namespace
            .as_deref()
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or("default")
    }
}

pub(crate) fn check_api_version(found: Option<&str>, expected: &str) -> Result<(), ObjectError> {
    match found {
        Some(found) if found != expected => Err(ObjectError::new(
            "apiVersion",
            format!("{found:?} is not supported (expected {expected})"),
        )),
        _ => Ok(()),
    }
}

/// Deserializes a value, keeping the path of the field that failed.
pub(crate) fn deserialize_at<T: DeserializeOwned>(
    value: serde_yaml::Value,
) -> Result<T, ObjectError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        // The library prints the root as ".".
        let path = if path == "." { String::new() } else { path };
        ObjectError::new(path, err.into_inner())
    })
}

/// Parses, validates and translates policy text into Cilium rules.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, PolicyError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(PolicyError::Empty);
    }
    let json = trimmed.starts_with('[') || trimmed.starts_with('{');
    if let Some(rules) = plain_rule_list(text, json) {
        return Ok(rules);
    }
    let documents = if json {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => vec![
                serde_yaml::to_value(value).map_err(|err| PolicyError::Syntax {
                    format: "JSON",
                    message: err.to_string(),
                })?,
            ],
            // YAML flow style also starts with a bracket; only if that fails too was
            // it really meant as (broken) JSON.
            Err(json_error) => yaml_documents(text).map_err(|_| PolicyError::Syntax {
                format: "JSON",
                message: json_error.to_string(),
            })?,
        }
    } else {
        yaml_documents(text).map_err(|err| PolicyError::Syntax {
            format: "YAML",
            message: err.to_string(),
        })?
    };
    if documents.is_empty() {
        return Err(PolicyError::Empty);
    }
    let numbered = documents.len() > 1;
    let mut rules = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let place = Place {
            document: numbered.then_some(index + 1),
            item: None,
        };
        rules.extend(rules_from_document(document, place)?);
    }
    Ok(rules)
}

/// The common shape, one list of valid Cilium rules, read without what
/// the other shapes (objects, several documents) and precise errors need:
/// no search for objects, no path kept, big YAML read on all cores. `None`
/// sends the text the careful way. Both ways read rules from the same
/// value tree, so they accept exactly the same rules (reading straight
/// into rules would take a YAML `5` for a string and a JSON array for an
/// object).
fn plain_rule_list(text: &str, json: bool) -> Option<Vec<Rule>> {
    let rules: Vec<Rule> = if json {
        let value: serde_yaml::Value = serde_json::from_str(text).ok()?;
        Vec::<Rule>::deserialize(value).ok()?
    } else {
        yaml_rule_list(text)?
    };
    let valid = !rules.is_empty() && rules.iter().all(|rule| rule.validate().is_ok());
    valid.then_some(rules)
}

/// Below this a YAML list is read on one thread.
const PARALLEL_YAML_BYTES: usize = 256 * 1024;

/// A top-level YAML list of rules, large ones read in pieces on all cores
/// (YAML is the slow part of a big import). A line that starts with `- `
/// at column 0 begins a new entry of a top-level list: an entry's own
/// content is indented, and a cut inside a quoted or flow scalar spanning
/// lines leaves a piece that fails to parse. Any failure is `None`, and the
/// whole text then goes the careful way.
fn yaml_rule_list(text: &str) -> Option<Vec<Rule>> {
    let pieces = std::thread::available_parallelism().map_or(1, |n| n.get());
    if text.len() < PARALLEL_YAML_BYTES || pieces < 2 {
        return yaml_rules(text);
    }
    let mut cuts = vec![0];
    for piece in 1..pieces {
        let from = (text.len() * piece / pieces).max(cuts[cuts.len() - 1]);
        match text[from..].find("\n- ") {
            Some(at) => cuts.push(from + at + 1),
            None => break,
        }
    }
    cuts.push(text.len());
    std::thread::scope(|scope| {
        let readers: Vec<_> = cuts
            .windows(2)
            .map(|span| {
                let piece = &text[span[0]..span[1]];
                scope.spawn(move || yaml_rules(piece))
            })
            .collect();
        let mut rules = Vec::new();
        for reader in readers {
            rules.extend(reader.join().ok()??);
        }
        Some(rules)
    })
}

/// Rules from YAML through a value tree, as the careful way reads them.
fn yaml_rules(text: &str) -> Option<Vec<Rule>> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    Vec::<Rule>::deserialize(value).ok()
}

/// Every non-empty document of a (possibly multi-document) YAML stream.
fn yaml_documents(text: &str) -> Result<Vec<serde_yaml::Value>, serde_yaml::Error> {
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(document)?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Where a rule or object sits in the input, for error messages.
#[derive(Debug, Clone, Copy)]
struct Place {
    document: Option<usize>,
    item: Option<usize>,
}

impl Place {
    fn suffix(self) -> String {
        match (self.document, self.item) {
            (Some(document), Some(item)) => format!(" (document {document}, items[{item}])"),
            (Some(document), None) => format!(" (document {document})"),
            (None, Some(item)) => format!(" (items[{item}])"),
            (None, None) => String::new(),
        }
    }
}

fn invalid(location: String, err: ObjectError) -> PolicyError {
    PolicyError::Invalid {
        location,
        path: err.path,
        message: err.message,
    }
}

fn is_object(value: &serde_yaml::Value) -> bool {
    value.get("kind").is_some() || value.get("apiVersion").is_some()
}

fn rules_from_document(
    document: serde_yaml::Value,
    place: Place,
) -> Result<Vec<Rule>, PolicyError> {
    match document {
        serde_yaml::Value::Sequence(elements) => {
            let mut rules = Vec::new();
            for (index, element) in elements.into_iter().enumerate() {
                if is_object(&element) {
                    rules.extend(rules_from_object(element, place)?);
                } else {
                    rules.push(rule_from_value(element, index, place)?);
                }
            }
            Ok(rules)
        }
        mapping @ serde_yaml::Value::Mapping(_) if is_object(&mapping) => {
            rules_from_object(mapping, place)
        }
        mapping @ serde_yaml::Value::Mapping(_) => Ok(vec![rule_from_value(mapping, 0, place)?]),
        // A tag (`!rules`) is ignored, as it is everywhere below and when a
        // plain list of rules is read directly.
        serde_yaml::Value::Tagged(tagged) => rules_from_document(tagged.value, place),
        other => Err(PolicyError::NotRules {
            document: place.document,
            found: yaml_kind(&other),
        }),
    }
}

/// One bare Cilium rule (the `cilium policy import` format).
fn rule_from_value(
    value: serde_yaml::Value,
    index: usize,
    place: Place,
) -> Result<Rule, PolicyError> {
    let location = format!("rule {index}{}", place.suffix());
    let rule: Rule = deserialize_at(value).map_err(|err| invalid(location.clone(), err))?;
    rule.validate()
        .map_err(|err| invalid(location, ObjectError::from(err)))?;
    Ok(rule)
}

/// A Kubernetes object: a policy kind, or a list of them.
fn rules_from_object(value: serde_yaml::Value, place: Place) -> Result<Vec<Rule>, PolicyError> {
    let kind = value
        .get("kind")
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = value
        .get("metadata")
        .and_then(|metadata| metadata.get("name"))
        .and_then(serde_yaml::Value::as_str);
    let location = match name {
        Some(name) => format!("{kind} {name:?}{}", place.suffix()),
        None if kind.is_empty() => format!("object{}", place.suffix()),
        None => format!("{kind}{}", place.suffix()),
    };
    let result = match kind.as_str() {
        KIND_CNP => cnp::rules_from_object(value, false),
        KIND_CCNP => cnp::rules_from_object(value, true),
        KIND_NETWORK_POLICY => k8s::rules_from_object(value),
        list if list.ends_with("List") && place.item.is_none() => return rules_from_list(value, place, &location),
        "" => Err(ObjectError::new("kind", "missing")),
        other => Err(ObjectError::new(
            "kind",
            format!(
                "{other:?} is not supported (expected {KIND_CNP}, {KIND_CCNP}, {KIND_NETWORK_POLICY} or List)"
            ),
        )),
    };
    result.map_err(|err| invalid(location, err))
}

fn rules_from_list(
    value: serde_yaml::Value,
    place: Place,
    location: &str,
) -> Result<Vec<Rule>, PolicyError> {
    let items = match value.get("items") {
        Some(serde_yaml::Value::Sequence(items)) => items.clone(),
        Some(serde_yaml::Value::Null) | None => Vec::new(),
        Some(other) => {
            return Err(invalid(
                location.to_string(),
                ObjectError::new(
                    "items",
                    format!("expected a list, found {}", yaml_kind(other)),
                ),
            ))
        }
    };
    let mut rules = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let place = Place {
            item: Some(index),
            ..place
        };
        if !is_object(&item) {
            return Err(invalid(
                format!("item{}", place.suffix()),
                ObjectError::new("", "expected a policy object with kind and apiVersion"),
            ));
        }
        rules.extend(rules_from_object(item, place)?);
    }
    Ok(rules)
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
#[path = "parse_tests.rs"]
mod tests;
