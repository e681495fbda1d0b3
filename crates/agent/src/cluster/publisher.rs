//! Writes this node's keys in the order they were decided, off the API's
//! path: an unreachable kvstore delays publication (the session re-writes
//! its keys once it is back) but never an endpoint's creation.

use std::time::Duration;

use kvstore::{KvError, Session};
use tokio::sync::mpsc;

/// How long a write waits for the session's lease before it counts as
/// failed. The session is granted its first lease in the background just
/// after the agent starts; a reachable store grants it at once, so only an
/// unreachable one makes a write wait this long.
const LEASE_WAIT: Duration = Duration::from_secs(5);

enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::UnboundedSender<Op>,
}

impl Publisher {
    pub fn start(session: Session) -> Publisher {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(op) = rx.recv().await {
                if let Err((key, e)) = apply(&session, op, LEASE_WAIT).await {
                    eprintln!(
                        "level=warning msg=\"kvstore: cannot write {key}: {e} (kept; written when the store is back)\""
                    );
                }
            }
        });
        Publisher { tx }
    }

    pub fn put(&self, key: String, value: Vec<u8>) {
        let _ = self.tx.send(Op::Put(key, value));
    }

    pub fn delete(&self, key: String) {
        let _ = self.tx.send(Op::Delete(key));
    }
}

/// A put waits for the session's lease: without one the session can only
/// remember the key, which is a failure only if the store stays away.
async fn apply(session: &Session, op: Op, lease_wait: Duration) -> Result<(), (String, KvError)> {
    match op {
        Op::Put(key, value) => {
            // On timeout the put below reports the missing lease.
            let _ = session.wait_for_lease(lease_wait).await;
            session.put(&key, value).await.map_err(|e| (key, e))
        }
        Op::Delete(key) => session.delete(&key).await.map_err(|e| (key, e)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kvstore::{Backend, Embedded, KvstoreConfig};

    use super::*;

    const TTL: Duration = Duration::from_secs(15);

    /// On this single-threaded runtime the session's lease task has not run
    /// yet when `apply` starts: the state right after the agent's start.
    #[tokio::test]
    async fn a_put_right_after_start_waits_for_the_first_lease() {
        let store = Arc::new(Embedded::new());
        let session = Session::start(store.clone(), TTL);
        assert_eq!(session.lease_id(), None);
        let put = Op::Put("cilium/state/nodes/v1/default/n1".into(), b"{}".to_vec());
        assert!(apply(&session, put, LEASE_WAIT).await.is_ok());
        let stored = store.get("cilium/state/nodes/v1/default/n1").await.unwrap();
        assert_eq!(stored.map(|kv| kv.value), Some(b"{}".to_vec()));
    }

    /// Nothing listens on port 1: the store is unreachable, and stays so.
    #[tokio::test]
    async fn an_unreachable_store_is_reported_and_the_key_kept() {
        let config = KvstoreConfig::from_flags("etcd", &["etcd.endpoints=http://127.0.0.1:1"])
            .expect("valid etcd flags");
        let etcd = config
            .connect(None)
            .await
            .expect("the etcd client connects lazily");
        let session = Session::start(etcd, TTL);
        let put = Op::Put("k".into(), b"v".to_vec());
        let (key, error) = apply(&session, put, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(key, "k");
        assert!(matches!(error, KvError::NoLease), "{error}");
        // Kept: written once the session has a lease.
        assert_eq!(session.owned_keys().await, ["k"]);
    }
}
