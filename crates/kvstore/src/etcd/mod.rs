//! The etcd v3 backend (gRPC, via the `etcd-client` crate).
//!
//! The client's channel balances over all endpoints and reconnects by itself; every
//! call here is bounded by the operation timeout so an outage surfaces as
//! [`KvError::Timeout`] or [`KvError::Unavailable`] instead of a hang.

mod watch;

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp,
};
use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::config::EtcdConfig;
use crate::error::{KvError, Result};
use crate::types::{BoxFuture, KeyValue, LeaseId, Listing, Revision};
use crate::watch::{Watch, WATCH_BUFFER};

const KIND: &str = "etcd";

/// A connection to an etcd cluster. Cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    endpoints: Vec<String>,
    timeout: Duration,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.endpoints)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Etcd {
    /// Sets up the client. Does not wait for etcd: the connection is made on first use
    /// and re-made after outages, so an agent can start while etcd is still down.
    pub async fn connect(config: &EtcdConfig) -> Result<Etcd> {
        let options = ConnectOptions::new()
            .with_connect_timeout(config.timeout)
            .with_timeout(config.timeout / 3)
            // HTTP/2 pings notice a dead member even when no request is in flight, so
            // watches move to a healthy member quickly.
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true)
            // A member cut off from the quorum refuses requests instead of serving
            // stale data; the balancer then tries another member.
            .with_require_leader(true);
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|err| KvError::Unavailable {
                backend: KIND,
                op: "connect",
                key: config.endpoints.join(","),
                reason: err.to_string(),
            })?;
        Ok(Etcd {
            client,
            endpoints: config.endpoints.clone(),
            timeout: config.timeout,
        })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Runs one etcd request, bounded by the operation timeout as a whole. Each
    /// attempt gets a third of it: a request the balancer sent to a member that just
    /// died hangs, and must leave time to try a live one. Requests that never reached
    /// etcd, timed out or found it unavailable are sent again; a conditional write
    /// repeated after it did commit reports "not done", which its callers tolerate
    /// (the identity lock recognises its own key, an orphan id key is collected).
    async fn call<T, F, Fut>(&self, op: &'static str, key: &str, mut request: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let per_attempt = self.timeout / 3;
        let attempts = async {
            loop {
                match tokio::time::timeout(per_attempt, request(self.client.clone())).await {
                    Ok(Err(err)) if never_sent(&err) || worth_retrying(&err) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Ok(other) => return other,
                    Err(_) => {} // this attempt hung: try again
                }
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(map_error(op, key, err)),
            Err(_) => Err(KvError::Timeout {
                backend: KIND,
                op,
                key: key.to_string(),
                after: self.timeout,
            }),
        }
    }

    async fn txn(&self, op: &'static str, key: &str, txn: Txn) -> Result<bool> {
        let response = self
            .call(op, key, |mut client| {
                let txn = txn.clone();
                async move { client.txn(txn).await }
            })
            .await?;
        Ok(response.succeeded())
    }
}

/// A connection that was refused or could not be set up: the request was not sent.
fn never_sent(err: &etcd_client::Error) -> bool {
    let text = err.to_string();
    text.contains("tcp connect error") || text.contains("Connection refused")
}

/// A member that timed out or is not serving: another may answer.
fn worth_retrying(err: &etcd_client::Error) -> bool {
    let text = err.to_string();
    text.contains("Timeout expired")
        || text.contains("Unavailable")
        || text.contains("transport error")
}

/// etcd reports a missing lease as a gRPC error; everything else means "not reachable
/// or not serving" to our callers.
pub(crate) fn map_error(op: &'static str, key: &str, err: etcd_client::Error) -> KvError {
    let reason = err.to_string();
    // Puts name it "requested lease not found", keep-alives "lease not found".
    if reason.contains("lease not found") {
        if let Ok(id) = key.parse() {
            return KvError::LeaseNotFound(id);
        }
    }
    KvError::Unavailable {
        backend: KIND,
        op,
        key: key.to_string(),
        reason,
    }
}

fn put_options(lease: Option<LeaseId>) -> Option<PutOptions> {
    lease.map(|id| PutOptions::new().with_lease(id))
}

fn to_key_value(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: (kv.lease() != 0).then_some(kv.lease()),
    }
}

/// Maps `LeaseNotFound` raised on a put to the lease id instead of the key.
fn lease_error(err: KvError, lease: Option<LeaseId>) -> KvError {
    match (err, lease) {
        (KvError::Unavailable { reason, .. }, Some(id))
            if reason.contains("requested lease not found") =>
        {
            KvError::LeaseNotFound(id)
        }
        (err, _) => err,
    }
}

impl Backend for Etcd {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        Box::pin(async move {
            let response = self
                .call("get", key, |mut c| async move { c.get(key, None).await })
                .await?;
            Ok(response.kvs().first().map(to_key_value))
        })
    }

    fn list_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Listing>> {
        Box::pin(async move {
            let options = GetOptions::new().with_prefix();
            let response = self
                .call("list", prefix, |mut c| {
                    let options = options.clone();
                    async move { c.get(prefix, Some(options)).await }
                })
                .await?;
            Ok(Listing {
                kvs: response.kvs().iter().map(to_key_value).collect(),
                revision: response.header().map_or(0, |h| h.revision()),
            })
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<Revision>> {
        Box::pin(async move {
            let response = self
                .call("set", key, |mut c| {
                    let value = value.clone();
                    async move { c.put(key, value, put_options(lease)).await }
                })
                .await
                .map_err(|err| lease_error(err, lease))?;
            Ok(response.header().map_or(0, |h| h.revision()))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let response = self
                .call(
                    "delete",
                    key,
                    |mut c| async move { c.delete(key, None).await },
                )
                .await?;
            Ok(response.deleted() > 0)
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let response = self
                .call("delete-prefix", prefix, |mut c| async move {
                    let options = DeleteOptions::new().with_prefix();
                    c.delete(prefix, Some(options)).await
                })
                .await?;
            Ok(response.deleted().max(0) as u64)
        })
    }

    fn create_only<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let txn = Txn::new()
                .when([Compare::create_revision(key, CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key, value, put_options(lease))]);
            let result = self.txn("create-only", key, txn).await;
            result.map_err(|err| lease_error(err, lease))
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let condition = match expected {
                Some(value) => Compare::value(key, CompareOp::Equal, value),
                None => Compare::create_revision(key, CompareOp::Equal, 0),
            };
            let txn =
                Txn::new()
                    .when([condition])
                    .and_then([TxnOp::put(key, new, put_options(lease))]);
            let result = self.txn("compare-and-swap", key, txn).await;
            result.map_err(|err| lease_error(err, lease))
        })
    }

    fn update_if_revision<'a>(
        &'a self,
        key: &'a str,
        mod_revision: Revision,
        new: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let txn = Txn::new()
                .when([Compare::mod_revision(key, CompareOp::Equal, mod_revision)])
                .and_then([TxnOp::put(key, new, put_options(lease))]);
            let result = self.txn("update-if-revision", key, txn).await;
            result.map_err(|err| lease_error(err, lease))
        })
    }

    fn delete_if_revision<'a>(
        &'a self,
        key: &'a str,
        mod_revision: Revision,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let txn = Txn::new()
                .when([Compare::mod_revision(key, CompareOp::Equal, mod_revision)])
                .and_then([TxnOp::delete(key, None)]);
            self.txn("delete-if-revision", key, txn).await
        })
    }

    fn set_if_exists<'a>(
        &'a self,
        guard: &'a str,
        key: &'a str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let txn = Txn::new()
                .when([Compare::create_revision(guard, CompareOp::Greater, 0)])
                .and_then([TxnOp::put(key, value, put_options(lease))]);
            let result = self.txn("set-if-exists", key, txn).await;
            result.map_err(|err| lease_error(err, lease))
        })
    }

    /// etcd counts TTLs in whole seconds: `ttl` is rounded up, with a minimum of 1 s.
    fn grant_lease(&self, ttl: Duration) -> BoxFuture<'_, Result<LeaseId>> {
        Box::pin(async move {
            let seconds = ttl.as_secs_f64().ceil().max(1.0) as i64;
            let response = self
                .call("lease-grant", "", |mut c| async move {
                    c.lease_grant(seconds, None).await
                })
                .await?;
            Ok(response.id())
        })
    }

    fn keep_alive_lease(&self, lease: LeaseId) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            let key = lease.to_string();
            let once = |mut c: Client| async move {
                let (mut keeper, mut responses) = c.lease_keep_alive(lease).await?;
                keeper.keep_alive().await?;
                let response = responses.message().await?;
                Ok(response.is_some_and(|r| r.ttl() > 0))
            };
            match self.call("lease-keep-alive", &key, once).await {
                Err(KvError::LeaseNotFound(_)) => Ok(false),
                other => other,
            }
        })
    }

    fn revoke_lease(&self, lease: LeaseId) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let key = lease.to_string();
            self.call("lease-revoke", &key, |mut c| async move {
                c.lease_revoke(lease).await
            })
            .await
            .map(|_| ())
        })
    }

    fn watch_prefix(&self, prefix: &str, from_revision: Option<Revision>) -> Watch {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let feed = watch::PrefixWatch {
            etcd: self.clone(),
            prefix: prefix.to_string(),
            tx,
        };
        let task = tokio::spawn(feed.run(from_revision));
        Watch::new(rx, task.abort_handle())
    }

    fn status(&self) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            let status = self
                .call("status", "", |mut c| async move { c.status().await })
                .await?;
            let member = status.header().map_or(0, |h| h.member_id());
            let role = if status.leader() == member && member != 0 {
                "Leader"
            } else {
                "Follower"
            };
            Ok(format!(
                "etcd: {} endpoint(s) {}, has-quorum=true, version {} ({role}), revision {}",
                self.endpoints.len(),
                self.endpoints.join(","),
                status.version(),
                status.header().map_or(0, |h| h.revision()),
            ))
        })
    }
}
