//! The watches on policy objects: NetworkPolicy, CiliumNetworkPolicy and
//! CiliumClusterwideNetworkPolicy. Each object's rules replace that
//! object's previous rules in one revision; an object that cannot be
//! enforced keeps its previous rules (if any), and the reason is written to
//! its status and shown by `cilium status`. Policies imported with the CLI
//! carry no object labels and are never touched here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use k8s::api::NetworkPolicy;
use k8s::kube::api::DynamicObject;
use k8s::kube::runtime::watcher;
use k8s::kube::Api;
use k8s::{Change, PolicyKey, PolicyKind, PolicyObject};

use super::K8sState;
use crate::daemon::Daemon;

pub async fn watch_network_policies(
    daemon: Arc<Daemon>,
    state: Arc<K8sState>,
    client: k8s::Client,
) {
    let changes = k8s::watch(
        Api::<NetworkPolicy>::all(client.clone()),
        watcher::Config::default(),
    )
    .map(|change| map_change(change, PolicyObject::from_network_policy));
    follow(
        daemon,
        state,
        client,
        PolicyKind::NetworkPolicy,
        "networkpolicies",
        changes,
    )
    .await;
}

pub async fn watch_cilium_policies(
    daemon: Arc<Daemon>,
    state: Arc<K8sState>,
    client: k8s::Client,
    kind: PolicyKind,
) {
    let resource = kind.cilium_resource().expect("a Cilium kind");
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
    let changes = k8s::watch(api, watcher::Config::default())
        .map(move |change| map_change(change, |object| PolicyObject::from_cilium(kind, object)));
    let plural = match kind {
        PolicyKind::CiliumClusterwideNetworkPolicy => "ciliumclusterwidenetworkpolicies",
        _ => "ciliumnetworkpolicies",
    };
    follow(daemon, state, client, kind, plural, changes).await;
}

fn map_change<K>(change: Change<K>, read: impl Fn(&K) -> PolicyObject) -> Change<PolicyObject> {
    match change {
        Change::Applied(object) => Change::Applied(read(&object)),
        Change::Deleted(object) => Change::Deleted(read(&object)),
        Change::Synced => Change::Synced,
        Change::Lost(e) => Change::Lost(e),
    }
}

/// What this node last wrote to an object's status, so a relist or its
/// own status write does not write again.
type Written = BTreeMap<PolicyKey, (Option<i64>, Option<String>)>;

async fn follow(
    daemon: Arc<Daemon>,
    state: Arc<K8sState>,
    client: k8s::Client,
    kind: PolicyKind,
    resource: &'static str,
    changes: impl Stream<Item = Change<PolicyObject>>,
) {
    state.status.watching(resource);
    let node = daemon.config().node_name();
    let mut known = BTreeSet::new();
    let mut written = Written::new();
    futures_util::pin_mut!(changes);
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied(object) => {
                known.insert(object.key.clone());
                let (revision, error) = apply(&daemon, &object);
                state
                    .status
                    .policy_error(object.key.to_string(), error.clone());
                let outcome = (object.generation, error);
                if written.get(&object.key) != Some(&outcome) {
                    let status = k8s::status::write_policy_status(
                        &client,
                        &object.key,
                        &node,
                        revision,
                        outcome.1.as_deref(),
                    );
                    match status.await {
                        Ok(()) => {
                            written.insert(object.key.clone(), outcome);
                        }
                        Err(e) => {
                            eprintln!("level=warning msg=\"{}: writing status: {e}\"", object.key)
                        }
                    }
                }
            }
            Change::Deleted(object) => {
                known.remove(&object.key);
                written.remove(&object.key);
                state.status.policy_error(object.key.to_string(), None);
                delete(&daemon, &object.key);
            }
            Change::Synced => {
                // Objects deleted while this agent was not running.
                for (namespace, name) in daemon.policy_objects(kind.as_str()) {
                    let key = PolicyKey {
                        kind,
                        namespace: (!namespace.is_empty()).then_some(namespace),
                        name,
                    };
                    if !known.contains(&key) {
                        delete(&daemon, &key);
                    }
                }
                state.status.synced(resource);
            }
            Change::Lost(e) => state.status.lost(resource, e),
        }
    }
}

/// Enforces an object's rules; the revision holding them, or why not.
fn apply(daemon: &Daemon, object: &PolicyObject) -> (u64, Option<String>) {
    let rules = match &object.rules {
        Ok(rules) => rules.clone(),
        Err(e) => {
            eprintln!("level=warning msg=\"{}: not enforced: {e}\"", object.key);
            return (daemon.policy_revision(), Some(e.clone()));
        }
    };
    match daemon.policy_replace_object(&object.key.labels(), rules) {
        Ok(revision) => (revision, None),
        Err(e) => {
            eprintln!("level=warning msg=\"{}: not enforced: {e}\"", object.key);
            (daemon.policy_revision(), Some(e.to_string()))
        }
    }
}

fn delete(daemon: &Daemon, key: &PolicyKey) {
    if let Err(e) = daemon.policy_replace_object(&key.labels(), Vec::new()) {
        eprintln!("level=warning msg=\"{key}: deleting its rules: {e}\"");
    }
}
