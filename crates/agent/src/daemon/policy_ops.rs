//! Policy import and deletion: validated whole, applied at once, and every
//! endpoint regenerated against the new repository.

use std::time::{Duration, Instant};

use api::models::Policy;
use policy::Labels;

use super::Daemon;
use crate::error::AgentError;

impl Daemon {
    /// Imports rules (JSON or YAML). Any error rejects the whole input and
    /// leaves the repository as it was.
    /// Answers like Cilium's `PUT /v1/policy`: the new revision and the
    /// rules just imported.
    pub fn policy_import(&self, text: &str, replace: bool) -> Result<Policy, AgentError> {
        let mut stages = Stages::start();
        let rules = policy::parse_rules(text).map_err(|e| AgentError::BadRequest(e.to_string()))?;
        // Compact: a big import's answer is megabytes the CLI only skims.
        let imported = serde_json::to_string(&rules).expect("rules serialize");
        let count = rules.len();
        stages.done("parse");
        let mut inner = self.lock();
        inner.repo.add(rules, replace);
        inner.recompile_rules();
        stages.done("repository");
        self.policy_changed(&mut inner, &mut stages)?;
        eprintln!(
            "level=info msg=\"policy import: {count} rules, revision {}: {stages}\"",
            inner.repo.revision()
        );
        Ok(Policy {
            revision: inner.repo.revision(),
            policy: imported,
        })
    }

    pub fn policy_revision(&self) -> u64 {
        self.lock().repo.revision()
    }

    pub fn policy_get(&self) -> Policy {
        policy_model(&self.lock().repo)
    }

    /// Deletes the rules carrying all of `labels`; every rule when empty.
    pub fn policy_delete(&self, labels: &[String]) -> Result<Policy, AgentError> {
        let labels = Labels::parse_all(labels)
            .map_err(|e| AgentError::BadRequest(format!("labels: {e}")))?;
        let mut inner = self.lock();
        let (deleted, _) = inner.repo.delete_by_labels(&labels);
        inner.recompile_rules();
        if deleted == 0 && !labels.is_empty() {
            return Err(AgentError::NotFound(format!(
                "no policy rule carries the labels {labels}"
            )));
        }
        self.policy_changed(&mut inner, &mut Stages::start())?;
        Ok(policy_model(&inner.repo))
    }

    /// Makes the rules of one object from the API server (every rule of
    /// which carries `object` labels) exactly `rules`; none deletes it.
    /// Returns the revision that holds them; an object applied again
    /// unchanged (a relist) changes nothing.
    pub fn policy_replace_object(
        &self,
        object: &[String],
        rules: Vec<policy::Rule>,
    ) -> Result<u64, AgentError> {
        let object = Labels::parse_all(object)
            .map_err(|e| AgentError::Internal(format!("object labels: {e}")))?;
        let mut stages = Stages::start();
        let count = rules.len();
        let mut inner = self.lock();
        let Some(revision) = inner.repo.replace_labelled(&object, rules) else {
            return Ok(inner.repo.revision());
        };
        inner.recompile_rules();
        stages.done("repository");
        self.policy_changed(&mut inner, &mut stages)?;
        eprintln!(
            "level=info msg=\"policy from Kubernetes: {object}: {count} rules, revision {revision}: {stages}\""
        );
        Ok(revision)
    }

    /// The `(namespace, name)` of every object of `kind` whose rules are in
    /// the repository (namespace empty for clusterwide kinds).
    pub fn policy_objects(&self, kind: &str) -> std::collections::BTreeSet<(String, String)> {
        use policy::policy_labels::{
            POLICY_LABEL_DERIVED_FROM, POLICY_LABEL_NAME, POLICY_LABEL_NAMESPACE,
        };
        let value = |labels: &[String], key: &str| {
            let prefix = format!("k8s:{key}=");
            labels
                .iter()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_default()
                .to_string()
        };
        self.lock()
            .repo
            .rules()
            .iter()
            .filter(|rule| value(&rule.labels, POLICY_LABEL_DERIVED_FROM) == kind)
            .map(|rule| {
                (
                    value(&rule.labels, POLICY_LABEL_NAMESPACE),
                    value(&rule.labels, POLICY_LABEL_NAME),
                )
            })
            .collect()
    }

    /// CIDR identities follow the rules, the policy maps follow both; the
    /// ipcache learns new CIDR identities only once the maps know them.
    fn policy_changed(
        &self,
        inner: &mut super::Inner,
        stages: &mut Stages,
    ) -> Result<(), AgentError> {
        let (added, removed) = self.update_cidr_identities(inner)?;
        // Learned IPs follow the rules' toFQDNs selectors.
        let fqdn = self.update_fqdn_identities(inner, None)?;
        // CIDR identities coming or going change which peers exist, for
        // every endpoint that selects the world: then all regenerate.
        let peers_changed = removed || !added.is_empty() || !fqdn.is_empty();
        stages.done("cidr identities");
        let regenerated = self.regenerate_changed(inner, peers_changed);
        stages.done("regenerate");
        self.publish_cidr_identities(inner, &added)?;
        self.apply_fqdn_changes(inner, fqdn, false)?;
        stages.done("ipcache");
        // Recompiling every endpoint allocates in bursts; hand what it freed
        // back to the system instead of keeping it as the agent's high-water.
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) };
        self.persist_policy(inner)?;
        stages.done("persist");
        regenerated
    }
}

/// How long each stage of a policy change took, for the log (the policy
/// benchmark reads it).
struct Stages {
    last: Instant,
    started: Instant,
    done: Vec<(&'static str, Duration)>,
}

impl Stages {
    fn start() -> Self {
        let now = Instant::now();
        Stages {
            last: now,
            started: now,
            done: Vec::new(),
        }
    }

    fn done(&mut self, stage: &'static str) {
        let now = Instant::now();
        self.done.push((stage, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (stage, took) in &self.done {
            write!(f, "{stage} {:.1} ms, ", took.as_secs_f64() * 1e3)?;
        }
        write!(
            f,
            "total {:.1} ms",
            (self.last - self.started).as_secs_f64() * 1e3
        )
    }
}

fn policy_model(repo: &policy::Repository) -> Policy {
    Policy {
        revision: repo.revision(),
        policy: serde_json::to_string_pretty(repo.rules()).expect("rules serialize"),
    }
}
