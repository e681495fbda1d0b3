//! Writes this node's keys in the order they were decided, off the API's
//! path: an unreachable kvstore delays publication (the session re-writes
//! its keys once it is back) but never an endpoint's creation.

use kvstore::Session;
use tokio::sync::mpsc;

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
                let (what, result) = match op {
                    Op::Put(key, value) => (key.clone(), session.put(&key, value).await),
                    Op::Delete(key) => (key.clone(), session.delete(&key).await),
                };
                if let Err(e) = result {
                    eprintln!(
                        "kvstore: publishing {what}: {e} (kept; written when the store is back)"
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
