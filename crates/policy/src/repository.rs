//! The node's policy repository: every imported rule plus a revision number
//! that moves on each change, so endpoints can tell whether their policy is
//! current. Serializable so the agent can persist and restore it.

use serde::{Deserialize, Serialize};

use crate::labels::Labels;
use crate::policy_labels::replacement_key;
use crate::rule::Rule;

/// Rules in import order and the revision they form. Starts at revision 1, like Cilium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    revision: u64,
    rules: Vec<Rule>,
}

impl Default for Repository {
    fn default() -> Self {
        Repository {
            revision: 1,
            rules: Vec::new(),
        }
    }
}

/// A rule's label set. Rules from `parse_rules` always have valid labels; an
/// unparsable label (only possible for rules built in code) is skipped rather
/// than making the whole rule unaddressable.
fn labels_of(rule: &Rule) -> Labels {
    rule.labels
        .iter()
        .filter_map(|text| text.parse().ok())
        .collect()
}

impl Repository {
    pub fn new() -> Self {
        Repository::default()
    }

    /// Adds rules (already validated) as one change and returns the new revision.
    /// With `replace_with_same_labels`, existing rules whose label set equals that
    /// of one of the new rules are removed first (Cilium's `policy import --replace`);
    /// for rules derived from a Kubernetes object only the object's identity
    /// labels (kind, namespace, name) are compared, so re-importing an edited
    /// object replaces all of its old rules.
    pub fn add(&mut self, rules: Vec<Rule>, replace_with_same_labels: bool) -> u64 {
        if replace_with_same_labels {
            let replaced: Vec<Labels> = rules
                .iter()
                .map(|rule| replacement_key(&labels_of(rule)))
                .collect();
            self.rules
                .retain(|existing| !replaced.contains(&replacement_key(&labels_of(existing))));
        }
        self.rules.extend(rules);
        self.bump()
    }

    /// Deletes every rule whose labels include all of `labels` (empty = every
    /// rule). Returns how many were deleted and the revision after the change;
    /// the revision only moves when something was deleted.
    pub fn delete_by_labels(&mut self, labels: &Labels) -> (usize, u64) {
        let before = self.rules.len();
        self.rules
            .retain(|rule| !labels_of(rule).contains_all(labels));
        let deleted = before - self.rules.len();
        if deleted > 0 {
            self.bump();
        }
        (deleted, self.revision)
    }

    /// Makes the rules carrying all of `labels` exactly `rules`, as one
    /// change: how an object from the API server (whose rules all carry its
    /// identity labels) is applied again. `None`, and no new revision, when
    /// they already are.
    pub fn replace_labelled(&mut self, labels: &Labels, rules: Vec<Rule>) -> Option<u64> {
        let current: Vec<&Rule> = self.labelled(labels).collect();
        if current.len() == rules.len() && current.iter().zip(&rules).all(|(a, b)| *a == b) {
            return None;
        }
        self.rules
            .retain(|rule| !labels_of(rule).contains_all(labels));
        self.rules.extend(rules);
        Some(self.bump())
    }

    /// The rules whose labels include all of `labels`.
    pub fn labelled<'a>(&'a self, labels: &'a Labels) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules
            .iter()
            .filter(move |rule| labels_of(rule).contains_all(labels))
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Rules whose `endpointSelector` selects an endpoint with these labels.
    pub fn rules_selecting(&self, endpoint: &Labels) -> Vec<&Rule> {
        self.rules
            .iter()
            .filter(|rule| rule.selects(endpoint))
            .collect()
    }

    fn bump(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_rules;

    fn rule(selector_app: &str, labels: &[&str]) -> Rule {
        let json = format!(
            r#"{{"endpointSelector": {{"matchLabels": {{"app": "{selector_app}"}}}},
                "ingress": [{{}}], "labels": {labels:?}}}"#
        );
        parse_rules(&json).unwrap().remove(0)
    }

    fn labels(texts: &[&str]) -> Labels {
        Labels::parse_all(texts).unwrap()
    }

    #[test]
    fn starts_at_revision_one_and_add_bumps() {
        let mut repo = Repository::new();
        assert_eq!(repo.revision(), 1);
        assert_eq!(repo.add(vec![rule("web", &["k8s:policy=a"])], false), 2);
        assert_eq!(repo.add(vec![rule("web", &["k8s:policy=a"])], false), 3);
        assert_eq!(
            repo.rules().len(),
            2,
            "without replace, duplicates accumulate"
        );
    }

    #[test]
    fn replace_labelled_changes_only_that_objects_rules() {
        let mut repo = Repository::new();
        repo.add(vec![rule("other", &["k8s:policy=b"])], false);
        let key = labels(&["k8s:policy=a"]);
        let first = vec![
            rule("web", &["k8s:policy=a"]),
            rule("db", &["k8s:policy=a"]),
        ];
        assert_eq!(repo.replace_labelled(&key, first.clone()), Some(3));
        assert_eq!(repo.replace_labelled(&key, first), None, "unchanged");
        assert_eq!(repo.revision(), 3);
        assert_eq!(repo.replace_labelled(&key, vec![]), Some(4));
        assert_eq!(repo.labelled(&key).count(), 0);
        assert_eq!(repo.rules().len(), 1, "the other object's rule stays");
    }

    #[test]
    fn replace_removes_rules_with_equal_labels_only() {
        let mut repo = Repository::new();
        repo.add(
            vec![
                rule("web", &["k8s:policy=a"]),
                rule("db", &["k8s:policy=a", "k8s:extra=1"]),
                rule("db", &["k8s:policy=b"]),
            ],
            false,
        );
        let revision = repo.add(vec![rule("api", &["k8s:policy=a"])], true);
        assert_eq!(revision, 3);
        let remaining: Vec<_> = repo.rules().iter().map(|r| r.labels.clone()).collect();
        assert_eq!(
            remaining,
            vec![
                vec!["k8s:policy=a".to_string(), "k8s:extra=1".to_string()],
                vec!["k8s:policy=b".to_string()],
                vec!["k8s:policy=a".to_string()],
            ]
        );
    }

    #[test]
    fn replace_swaps_every_rule_of_a_reimported_object() {
        let object = |port: u16, team: &str| {
            format!(
                "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: web, namespace: prod}}\n\
                 specs:\n- endpointSelector: {{}}\n  labels: [team={team}]\n  ingress:\n  - toPorts: [{{ports: [{{port: '{port}'}}]}}]\n\
                 - endpointSelector: {{}}\n  egress: [{{}}]\n"
            )
        };
        let mut repo = Repository::new();
        repo.add(parse_rules(&object(80, "a")).unwrap(), true);
        repo.add(vec![rule("db", &["k8s:policy=other"])], true);
        assert_eq!(repo.rules().len(), 3);
        repo.add(parse_rules(&object(81, "b")).unwrap(), true);
        assert_eq!(
            repo.rules().len(),
            3,
            "both old specs replaced, other rule kept"
        );
        assert!(repo
            .rules()
            .iter()
            .any(|r| r.labels.contains(&"unspec:team=b".to_string())));
        assert!(!repo
            .rules()
            .iter()
            .any(|r| r.labels.contains(&"unspec:team=a".to_string())));
        let (deleted, _) = repo.delete_by_labels(&labels(&[
            "k8s:io.cilium.k8s.policy.name=web",
            "k8s:io.cilium.k8s.policy.namespace=prod",
        ]));
        assert_eq!(deleted, 2);
    }

    #[test]
    fn delete_by_labels_matches_subsets_and_empty_means_all() {
        let mut repo = Repository::new();
        repo.add(
            vec![
                rule("web", &["k8s:policy=a", "k8s:team=x"]),
                rule("db", &["k8s:policy=b", "k8s:team=x"]),
                rule("db", &[]),
            ],
            false,
        );
        assert_eq!(repo.delete_by_labels(&labels(&["k8s:policy=zzz"])), (0, 2));
        assert_eq!(repo.delete_by_labels(&labels(&["k8s:team=x"])), (2, 3));
        assert_eq!(repo.rules().len(), 1);
        assert_eq!(repo.delete_by_labels(&Labels::new()), (1, 4));
        assert!(repo.rules().is_empty());
    }

    #[test]
    fn selects_rules_for_an_endpoint() {
        let mut repo = Repository::new();
        repo.add(vec![rule("web", &[]), rule("db", &[])], false);
        let selected = repo.rules_selecting(&labels(&["k8s:app=web"]));
        assert_eq!(selected.len(), 1);
        assert!(selected[0].selects(&labels(&["container:app=web"])));
    }

    #[test]
    fn serde_round_trip_is_faithful() {
        let mut repo = Repository::new();
        repo.add(
            parse_rules(
                r#"[{"endpointSelector": {"matchLabels": {"k8s:app": "web"}},
                     "ingress": [{"fromEndpoints": [], "toPorts": [{"ports": [{"port": 80, "protocol": "tcp"}]}]}],
                     "egress": [{}], "labels": ["k8s:policy=a"], "description": "d"}]"#,
            )
            .unwrap(),
            false,
        );
        let json = serde_json::to_string(&repo).unwrap();
        let restored: Repository = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, repo);
        let rule_json = serde_json::to_string(&repo.rules()[0]).unwrap();
        assert_eq!(
            rule_json,
            r#"{"endpointSelector":{"matchLabels":{"k8s:app":"web"}},"ingress":[{"fromEndpoints":[],"toPorts":[{"ports":[{"port":"80","protocol":"TCP"}]}]}],"egress":[{}],"labels":["k8s:policy=a"],"description":"d"}"#
        );
        assert_eq!(parse_rules(&rule_json).unwrap(), repo.rules());
    }
}
