//! What `cilium status` tells about Kubernetes: whether the API server is
//! reachable, which resources are watched and in sync, and the policy
//! objects this node cannot enforce (with the reason).

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct WatchStatus {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Resource (plural) → in sync, or the last error.
    resources: BTreeMap<&'static str, Result<bool, String>>,
    /// Object (`CiliumNetworkPolicy ns/name`) → why it is not enforced.
    policy_errors: BTreeMap<String, String>,
    server_version: Option<String>,
}

/// A snapshot for the status API.
pub struct Report {
    pub ok: bool,
    pub message: String,
    pub resources: Vec<String>,
    pub policy_errors: Vec<String>,
}

impl WatchStatus {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn watching(&self, resource: &'static str) {
        self.lock().resources.entry(resource).or_insert(Ok(false));
    }

    pub fn synced(&self, resource: &'static str) {
        self.lock().resources.insert(resource, Ok(true));
    }

    pub fn lost(&self, resource: &'static str, error: String) {
        self.lock().resources.insert(resource, Err(error));
    }

    pub fn server_version(&self, version: String) {
        self.lock().server_version = Some(version);
    }

    pub fn policy_error(&self, object: String, error: Option<String>) {
        let mut inner = self.lock();
        match error {
            Some(error) => inner.policy_errors.insert(object, error),
            None => inner.policy_errors.remove(&object),
        };
    }

    pub fn report(&self) -> Report {
        let inner = self.lock();
        let failing: Vec<String> = inner
            .resources
            .iter()
            .filter_map(|(r, state)| state.as_ref().err().map(|e| format!("{r}: {e}")))
            .collect();
        let syncing: Vec<&str> = inner
            .resources
            .iter()
            .filter(|(_, state)| matches!(state, Ok(false)))
            .map(|(r, _)| *r)
            .collect();
        let version = inner.server_version.as_deref().unwrap_or("version unknown");
        let message = if !failing.is_empty() {
            format!(
                "{version}; enforcing the last known state; {}",
                failing.join("; ")
            )
        } else if !syncing.is_empty() {
            format!("{version}; syncing {}", syncing.join(", "))
        } else {
            version.to_string()
        };
        Report {
            ok: failing.is_empty(),
            message,
            resources: inner
                .resources
                .iter()
                .map(|(r, state)| {
                    let state = match state {
                        Ok(true) => "synced",
                        Ok(false) => "syncing",
                        Err(_) => "failing",
                    };
                    format!("{r} ({state})")
                })
                .collect(),
            policy_errors: inner
                .policy_errors
                .iter()
                .map(|(object, error)| format!("{object}: {error}"))
                .collect(),
        }
    }
}
