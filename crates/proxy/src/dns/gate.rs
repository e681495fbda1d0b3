//! Answers held until the agent lets them go. Before an answer carrying
//! addresses is released to the pod, every agent connection gets a
//! `dns_answer` line; the answer goes out when one of them replies
//! `dns_answer_done` with its id (the agent has put the addresses in the
//! ipcache and the endpoint's policy), when `--dns-response-max-delay`
//! passes, or at once when no agent is connected. An answer whose addresses
//! the agent applied for the same endpoint and name within their TTL is
//! still told (the agent refreshes the TTL) but not held: the datapath
//! already allows them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, oneshot};

use crate::control::protocol::Reply;

/// How an answer was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The agent said `dns_answer_done`.
    Done,
    /// `max_delay` passed first.
    TimedOut,
    /// No agent connected (or the last one left while waiting).
    NoAgent,
    /// The agent applied these addresses for this name within their TTL.
    Known,
}

/// (endpoint, name) -> the addresses the agent applied for it, and until
/// when their TTL keeps them.
type Applied = (Vec<String>, Instant);

/// Most (endpoint, name) pairs remembered as applied; beyond, expired ones
/// are dropped first.
const MAX_APPLIED: usize = 65536;

/// The answer's content as the agent is told it (the id is added here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerNotice {
    pub endpoint_id: u64,
    pub source: String,
    pub name: String,
    pub ips: Vec<String>,
    pub ttl: u32,
    pub cnames: Vec<String>,
    pub rcode: u8,
}

#[derive(Debug)]
pub struct AnswerGate {
    next_id: AtomicU64,
    agents: Arc<AtomicUsize>,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>,
    applied: Mutex<HashMap<(u64, String), Applied>>,
    /// Only `Reply::DnsAnswer` lines.
    lines: broadcast::Sender<Reply>,
}

impl Default for AnswerGate {
    fn default() -> Self {
        AnswerGate {
            next_id: AtomicU64::new(1),
            agents: Arc::default(),
            waiting: Arc::default(),
            applied: Mutex::default(),
            lines: broadcast::channel(4096).0,
        }
    }
}

/// An agent connection, counted while it lives.
#[derive(Debug)]
pub struct AgentPresence {
    agents: Arc<AtomicUsize>,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>,
}

impl Drop for AgentPresence {
    fn drop(&mut self) {
        if self.agents.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Nobody is left to answer: release everything held.
            let waiting = std::mem::take(&mut *lock(&self.waiting));
            for (_, release) in waiting {
                let _ = release.send(());
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl AnswerGate {
    /// The `dns_answer` lines for one control connection.
    pub fn subscribe(&self) -> broadcast::Receiver<Reply> {
        self.lines.subscribe()
    }

    /// Counts an agent connection (after its `hello`) until dropped.
    pub fn agent_connected(&self) -> AgentPresence {
        self.agents.fetch_add(1, Ordering::AcqRel);
        AgentPresence {
            agents: self.agents.clone(),
            waiting: self.waiting.clone(),
        }
    }

    pub fn agents(&self) -> usize {
        self.agents.load(Ordering::Acquire)
    }

    /// Tells the agents about `notice` and waits for the go-ahead (unless
    /// they applied the same addresses for the name within their TTL).
    pub async fn hold(&self, notice: AnswerNotice, max_delay: Duration) -> Release {
        if self.agents() == 0 {
            return Release::NoAgent;
        }
        let key = (notice.endpoint_id, notice.name.clone());
        let known = lock(&self.applied).get(&key).is_some_and(|(ips, until)| {
            Instant::now() < *until && notice.ips.iter().all(|ip| ips.contains(ip))
        });
        let (ips, ttl) = (notice.ips.clone(), notice.ttl);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (release, released) = oneshot::channel();
        if !known {
            lock(&self.waiting).insert(id, release);
        }
        let line = Reply::DnsAnswer {
            id,
            endpoint_id: notice.endpoint_id,
            source: notice.source,
            name: notice.name,
            ips: notice.ips,
            ttl: notice.ttl,
            cnames: notice.cnames,
            rcode: notice.rcode,
        };
        // The last agent may have left between the check and the insert.
        if self.lines.send(line).is_err() || self.agents() == 0 {
            lock(&self.waiting).remove(&id);
            return Release::NoAgent;
        }
        if known {
            return Release::Known;
        }
        let result = tokio::time::timeout(max_delay, released).await;
        lock(&self.waiting).remove(&id);
        match result {
            Ok(Ok(())) if self.agents() == 0 => Release::NoAgent,
            Ok(_) => {
                self.remember(key, ips, ttl);
                Release::Done
            }
            Err(_) => Release::TimedOut,
        }
    }

    fn remember(&self, key: (u64, String), ips: Vec<String>, ttl: u32) {
        let now = Instant::now();
        let mut applied = lock(&self.applied);
        if applied.len() >= MAX_APPLIED {
            applied.retain(|_, (_, until)| *until > now);
        }
        if applied.len() < MAX_APPLIED {
            applied.insert(key, (ips, now + Duration::from_secs(ttl.into())));
        }
    }

    /// `dns_answer_done`: releases answer `id` (false when it is not held,
    /// e.g. already released by the timeout).
    pub fn release(&self, id: u64) -> bool {
        match lock(&self.waiting).remove(&id) {
            Some(release) => release.send(()).is_ok(),
            None => false,
        }
    }

    /// Answers held now.
    pub fn held(&self) -> usize {
        lock(&self.waiting).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> AnswerNotice {
        AnswerNotice {
            endpoint_id: 3,
            source: "10.0.0.5".into(),
            name: "a.test".into(),
            ips: vec!["192.0.2.1".into()],
            ttl: 60,
            ..AnswerNotice::default()
        }
    }

    #[tokio::test]
    async fn without_agents_answers_pass_at_once() {
        let gate = AnswerGate::default();
        let release = gate.hold(notice(), Duration::from_secs(60)).await;
        assert_eq!(release, Release::NoAgent);
    }

    #[tokio::test]
    async fn the_agent_releases_by_id_and_silence_times_out() {
        let gate = Arc::new(AnswerGate::default());
        let _agent = gate.agent_connected();
        let mut lines = gate.subscribe();
        let held = tokio::spawn({
            let gate = gate.clone();
            async move { gate.hold(notice(), Duration::from_secs(60)).await }
        });
        let Ok(Reply::DnsAnswer { id, name, ips, .. }) = lines.recv().await else {
            panic!("expected a dns_answer line");
        };
        assert_eq!((name.as_str(), ips.len()), ("a.test", 1));
        assert!(!gate.release(id + 100));
        assert!(gate.release(id));
        assert_eq!(held.await.unwrap(), Release::Done);
        assert_eq!(gate.held(), 0);
        let other = AnswerNotice {
            name: "b.test".into(),
            ..notice()
        };
        let release = gate.hold(other, Duration::from_millis(20)).await;
        assert_eq!(release, Release::TimedOut);
        assert_eq!(gate.held(), 0);
    }

    /// Holds `notice` as the agent would see it: its line arrives and the
    /// agent says it is done.
    async fn applied(gate: &Arc<AnswerGate>, notice: AnswerNotice) -> Release {
        let mut lines = gate.subscribe();
        let held = tokio::spawn({
            let gate = gate.clone();
            async move { gate.hold(notice, Duration::from_secs(60)).await }
        });
        let Ok(Reply::DnsAnswer { id, .. }) = lines.recv().await else {
            panic!("expected a dns_answer line");
        };
        gate.release(id);
        held.await.unwrap()
    }

    #[tokio::test]
    async fn addresses_applied_within_their_ttl_are_told_but_not_held() {
        let gate = Arc::new(AnswerGate::default());
        let _agent = gate.agent_connected();
        assert_eq!(applied(&gate, notice()).await, Release::Done);
        // The same address again: told (the agent refreshes the TTL), not held.
        let mut lines = gate.subscribe();
        let again = gate.hold(notice(), Duration::from_secs(60)).await;
        assert_eq!(again, Release::Known);
        assert!(matches!(lines.recv().await, Ok(Reply::DnsAnswer { .. })));
        // A new address for the name is held again.
        let more = AnswerNotice {
            ips: vec!["192.0.2.1".into(), "192.0.2.2".into()],
            ..notice()
        };
        let release = gate.hold(more, Duration::from_millis(20)).await;
        assert_eq!(release, Release::TimedOut);
        // Past its TTL an address is held again too.
        let short = AnswerNotice {
            name: "c.test".into(),
            ttl: 0,
            ..notice()
        };
        assert_eq!(applied(&gate, short.clone()).await, Release::Done);
        let release = gate.hold(short, Duration::from_millis(20)).await;
        assert_eq!(release, Release::TimedOut);
    }

    #[tokio::test]
    async fn the_last_agent_leaving_releases_held_answers() {
        let gate = Arc::new(AnswerGate::default());
        let agent = gate.agent_connected();
        let mut lines = gate.subscribe();
        let held = tokio::spawn({
            let gate = gate.clone();
            async move { gate.hold(notice(), Duration::from_secs(60)).await }
        });
        lines.recv().await.unwrap();
        drop(agent);
        assert_eq!(held.await.unwrap(), Release::NoAgent);
    }
}
