//! The CNP status signal: `kubectl get cnp -w -o json` running for the
//! whole measurement, each object it prints stamped on arrival with the
//! per-node `status.nodes.<node>.localPolicyRevision` it carries. The
//! watch sees a node's status write once the API server has stored it and
//! sent the event: an upper bound on when that node reported.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::Value;

/// One node's entry in an object's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStatus {
    pub revision: u64,
    pub enforcing: bool,
}

/// One object as the watch printed it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub name: String,
    pub nodes: BTreeMap<String, NodeStatus>,
}

pub struct StatusWatch {
    child: Child,
    seen: Arc<Mutex<Vec<Seen>>>,
    reader: Option<JoinHandle<()>>,
}

impl StatusWatch {
    pub fn start(kubectl: &Path, kubeconfig: &Path, namespace: &str) -> Result<StatusWatch> {
        let mut cmd = Command::new(kubectl);
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["get", "ciliumnetworkpolicies", "-n", namespace])
            .args(["--watch", "--output-watch-events", "-o", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; the watch ends with the bench.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("running kubectl get --watch")?;
        let stdout = child.stdout.take().context("kubectl stdout")?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let events = serde_json::Deserializer::from_reader(BufReader::new(stdout))
                    .into_iter::<Value>();
                for event in events {
                    let Ok(event) = event else { return };
                    let at = Instant::now();
                    if let Some(object) = read_event(&event) {
                        lock(&seen).push(Seen { at, ..object });
                    }
                }
            })
        };
        Ok(StatusWatch {
            child,
            seen,
            reader: Some(reader),
        })
    }

    /// Everything seen so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    /// Whether kubectl still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for StatusWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn lock<V>(m: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `{"type": …, "object": CNP}` → the object's name and node statuses
/// (`at` is filled in by the caller).
fn read_event(event: &Value) -> Option<Seen> {
    let object = &event["object"];
    let name = object["metadata"]["name"].as_str()?.to_string();
    let nodes = object["status"]["nodes"]
        .as_object()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|(node, entry)| {
                    Some((
                        node.clone(),
                        NodeStatus {
                            revision: entry["localPolicyRevision"].as_u64()?,
                            enforcing: entry["enforcing"].as_bool().unwrap_or(false),
                        },
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Seen {
        at: Instant::now(),
        name,
        nodes,
    })
}

/// The first sighting of `name` at or after `since` in which every node of
/// `nodes` enforces it at a revision above the one it had in `before` (any
/// revision when `before` lacks the node: a new object).
pub fn first_reported<'a>(
    seen: &'a [Seen],
    name: &str,
    since: Instant,
    nodes: &[String],
    before: &BTreeMap<String, NodeStatus>,
) -> Option<&'a Seen> {
    seen.iter().find(|s| {
        s.at >= since
            && s.name == name
            && nodes.iter().all(|node| {
                s.nodes.get(node).is_some_and(|now| {
                    now.enforcing && before.get(node).is_none_or(|b| now.revision > b.revision)
                })
            })
    })
}

/// The node statuses of the last sighting of `name` before `until`.
pub fn last_before(seen: &[Seen], name: &str, until: Instant) -> BTreeMap<String, NodeStatus> {
    seen.iter()
        .rev()
        .find(|s| s.name == name && s.at < until)
        .map(|s| s.nodes.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn event(name: &str, nodes: &[(&str, u64)]) -> Value {
        let nodes: serde_json::Map<String, Value> = nodes
            .iter()
            .map(|(n, r)| {
                (
                    n.to_string(),
                    serde_json::json!({"localPolicyRevision": r, "enforcing": true, "ok": true}),
                )
            })
            .collect();
        serde_json::json!({"type": "MODIFIED", "object": {
            "metadata": {"name": name}, "status": {"nodes": nodes}}})
    }

    #[test]
    fn reports_once_every_node_moved_past_its_old_revision() {
        let t = Instant::now();
        let at = |ms: u64, e: Value| Seen {
            at: t + Duration::from_millis(ms),
            ..read_event(&e).unwrap()
        };
        let seen = vec![
            at(0, event("flip-000", &[("node0", 5), ("node1", 7)])),
            at(20, event("flip-000", &[("node0", 9), ("node1", 7)])),
            at(30, event("flip-000", &[("node0", 9), ("node1", 11)])),
        ];
        let nodes = vec!["node0".to_string(), "node1".to_string()];
        let since = t + Duration::from_millis(10);
        let before = last_before(&seen, "flip-000", since);
        assert_eq!(before["node1"].revision, 7);
        let hit = first_reported(&seen, "flip-000", since, &nodes, &before).unwrap();
        assert_eq!(hit.at - t, Duration::from_millis(30));
        // A new object: any revision on every node.
        let hit = first_reported(&seen, "flip-000", t, &nodes, &BTreeMap::new()).unwrap();
        assert_eq!(hit.at, t);
        assert!(first_reported(&seen, "flip-001", t, &nodes, &BTreeMap::new()).is_none());
        assert!(read_event(&serde_json::json!({"type": "ERROR"})).is_none());
    }
}
