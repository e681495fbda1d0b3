//! Policy import and deletion: validated whole, applied at once, and every
//! endpoint regenerated against the new repository.

use std::time::Instant;

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
        let started = Instant::now();
        let rules = policy::parse_rules(text).map_err(|e| AgentError::BadRequest(e.to_string()))?;
        let imported = serde_json::to_string_pretty(&rules).expect("rules serialize");
        let count = rules.len();
        let parsed = started.elapsed();
        let mut inner = self.lock();
        inner.repo.add(rules, replace);
        inner.recompile_rules();
        self.policy_changed(&mut inner)?;
        eprintln!(
            "level=info msg=\"policy import: {count} rules, revision {}: parsed in {parsed:?}, applied in {:?}\"",
            inner.repo.revision(),
            started.elapsed() - parsed
        );
        Ok(Policy {
            revision: inner.repo.revision(),
            policy: imported,
        })
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
        self.policy_changed(&mut inner)?;
        Ok(policy_model(&inner.repo))
    }

    /// CIDR identities follow the rules, the policy maps follow both; the
    /// ipcache learns new CIDR identities only once the maps know them.
    fn policy_changed(&self, inner: &mut super::Inner) -> Result<(), AgentError> {
        let before = super::cidr::prefix_identities(inner);
        let added = self.update_cidr_identities(inner)?;
        // CIDR identities coming or going change which peers exist, for
        // every endpoint that selects the world: then all regenerate.
        let peers_changed = before != super::cidr::prefix_identities(inner);
        let started = Instant::now();
        let regenerated = self.regenerate_changed(inner, peers_changed);
        let regenerate_took = started.elapsed();
        // Recompiling every endpoint allocates in bursts; hand what it freed
        // back to the system instead of keeping it as the agent's high-water.
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) };
        self.publish_cidr_identities(inner, &added)?;
        self.persist_policy(inner)?;
        eprintln!(
            "level=debug msg=\"policy change: endpoints regenerated in {regenerate_took:?}, trimmed and persisted in {:?}\"",
            started.elapsed() - regenerate_took
        );
        regenerated
    }
}

fn policy_model(repo: &policy::Repository) -> Policy {
    Policy {
        revision: repo.revision(),
        policy: serde_json::to_string_pretty(repo.rules()).expect("rules serialize"),
    }
}
