//! Answers held until the agent lets them go. Before an answer carrying
//! addresses is released to the pod, every agent connection gets a
//! `dns_answer` line; the answer goes out when one of them replies
//! `dns_answer_done` with its id (the agent has put the addresses in the
//! ipcache and the endpoint's policy), when `--dns-response-max-delay`
//! passes, or at once when no agent is connected.
//!
//! An answer whose addresses the agent applied for the same endpoint and
//! name within their TTL passes at once: the datapath already allows them.
//! The agent still hears of it, to refresh the TTL, but at most once a
//! second per name (`REFRESH_EVERY`; the agent's expiry runs once a second
//! too): a refresh coming sooner waits for `take_refreshes`, so a name
//! asked thousands of times a second costs the agent one line a second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, oneshot};

use crate::control::protocol::Reply;

/// How a held answer was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The agent said `dns_answer_done`.
    Done,
    /// `max_delay` passed first.
    TimedOut,
    /// No agent connected (or the last one left while waiting).
    NoAgent,
}

/// The id of a `dns_answer` line that holds nothing: a TTL refresh, which
/// the agent applies without answering.
pub const REFRESH_ID: u64 = 0;

/// Longest a TTL refresh waits to be told (see the module's text).
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// What the agent applied for one (endpoint, name).
#[derive(Debug)]
struct Applied {
    ips: Vec<String>,
    /// Until when the datapath surely allows them (their TTL, less the
    /// second the agent's whole-second clock may cut off).
    until: Instant,
    /// When the agent was last told about the name.
    told: Instant,
    /// A refresh not told yet (the latest), and when its answer came.
    refresh: Option<(AnswerNotice, Instant)>,
}

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
    /// Some `Applied` has a refresh waiting.
    refreshes_waiting: AtomicBool,
    /// Only `Reply::DnsAnswer` lines.
    lines: broadcast::Sender<Reply>,
}

impl Default for AnswerGate {
    fn default() -> Self {
        AnswerGate {
            next_id: AtomicU64::new(REFRESH_ID + 1),
            agents: Arc::default(),
            waiting: Arc::default(),
            applied: Mutex::default(),
            refreshes_waiting: AtomicBool::new(false),
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

/// The `dns_answer` line for `notice`.
fn line(id: u64, notice: AnswerNotice) -> Reply {
    Reply::DnsAnswer {
        id,
        endpoint_id: notice.endpoint_id,
        source: notice.source,
        name: notice.name,
        ips: notice.ips,
        ttl: notice.ttl,
        cnames: notice.cnames,
        rcode: notice.rcode,
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

    /// Whether an answer may go to the pod without waiting: no agent is
    /// connected, or the agent applied all its addresses for this endpoint
    /// and name within their TTL (the refresh is then told, or kept for
    /// `take_refreshes`).
    pub fn passes(&self, notice: &AnswerNotice) -> bool {
        if self.agents() == 0 {
            return true;
        }
        let now = Instant::now();
        let mut applied = lock(&self.applied);
        let key = (notice.endpoint_id, notice.name.clone());
        let Some(entry) = applied.get_mut(&key) else {
            return false;
        };
        if now >= entry.until || !notice.ips.iter().all(|ip| entry.ips.contains(ip)) {
            return false;
        }
        if now.duration_since(entry.told) < REFRESH_EVERY {
            entry.refresh = Some((notice.clone(), now));
            self.refreshes_waiting.store(true, Ordering::Release);
            return true;
        }
        entry.told = now;
        entry.refresh = None;
        drop(applied);
        // A lost line costs only the refresh: the answer passes anyway.
        let _ = self.lines.send(line(REFRESH_ID, notice.clone()));
        true
    }

    /// Refreshes kept by `passes` that are due (their name was last told
    /// `REFRESH_EVERY` ago), as `dns_answer` lines with `REFRESH_ID`; each
    /// TTL counts from its answer.
    pub fn take_refreshes(&self) -> Vec<Reply> {
        if !self.refreshes_waiting.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        let now = Instant::now();
        let mut lines = Vec::new();
        let mut waiting = false;
        for entry in lock(&self.applied).values_mut() {
            let Some((notice, at)) = entry.refresh.take() else {
                continue;
            };
            if now.duration_since(entry.told) < REFRESH_EVERY {
                entry.refresh = Some((notice, at));
                waiting = true;
                continue;
            }
            entry.told = now;
            let elapsed = u32::try_from(now.duration_since(at).as_secs()).unwrap_or(u32::MAX);
            let ttl = notice.ttl.saturating_sub(elapsed);
            lines.push(line(REFRESH_ID, AnswerNotice { ttl, ..notice }));
        }
        if waiting {
            self.refreshes_waiting.store(true, Ordering::Release);
        }
        lines
    }

    /// Tells the agents about `notice` and waits for the go-ahead.
    pub async fn hold(&self, notice: AnswerNotice, max_delay: Duration) -> Release {
        if self.agents() == 0 {
            return Release::NoAgent;
        }
        let key = (notice.endpoint_id, notice.name.clone());
        let (ips, ttl) = (notice.ips.clone(), notice.ttl);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (release, released) = oneshot::channel();
        lock(&self.waiting).insert(id, release);
        // The last agent may have left between the check and the insert.
        if self.lines.send(line(id, notice)).is_err() || self.agents() == 0 {
            lock(&self.waiting).remove(&id);
            return Release::NoAgent;
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
            applied.retain(|_, entry| entry.until > now || entry.refresh.is_some());
        }
        if applied.len() < MAX_APPLIED {
            let applied_for = Duration::from_secs(ttl.saturating_sub(1).into());
            applied.insert(
                key,
                Applied {
                    ips,
                    until: now + applied_for,
                    told: now,
                    refresh: None,
                },
            );
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
    async fn addresses_applied_within_their_ttl_pass_and_refresh_once_a_second() {
        let gate = Arc::new(AnswerGate::default());
        let _agent = gate.agent_connected();
        assert!(!gate.passes(&notice()));
        assert_eq!(applied(&gate, notice()).await, Release::Done);
        // The same address again passes; the agent was told just now, so
        // the refresh waits (the latest one kept).
        let mut lines = gate.subscribe();
        assert!(gate.passes(&notice()));
        let later = AnswerNotice {
            ttl: 30,
            ..notice()
        };
        assert!(gate.passes(&later));
        assert!(lines.try_recv().is_err());
        assert!(gate.take_refreshes().is_empty(), "not due yet");
        tokio::time::sleep(REFRESH_EVERY).await;
        let due = gate.take_refreshes();
        let [Reply::DnsAnswer { id, ttl, .. }] = due.as_slice() else {
            panic!("one refresh expected, got {due:?}");
        };
        assert_eq!(
            (*id, *ttl),
            (REFRESH_ID, 29),
            "the TTL counts from the answer"
        );
        assert!(gate.take_refreshes().is_empty());
        // Told a second ago: the next refresh goes at once.
        tokio::time::sleep(REFRESH_EVERY).await;
        assert!(gate.passes(&notice()));
        assert!(matches!(
            lines.try_recv(),
            Ok(Reply::DnsAnswer { id: REFRESH_ID, .. })
        ));
        // A new address for the name is held again.
        let more = AnswerNotice {
            ips: vec!["192.0.2.1".into(), "192.0.2.2".into()],
            ..notice()
        };
        assert!(!gate.passes(&more));
        // So is one whose TTL (less the agent's clock second) ran out.
        let short = AnswerNotice {
            name: "c.test".into(),
            ttl: 1,
            ..notice()
        };
        assert_eq!(applied(&gate, short.clone()).await, Release::Done);
        assert!(!gate.passes(&short));
    }

    #[tokio::test]
    async fn without_agents_every_answer_passes() {
        let gate = AnswerGate::default();
        assert!(gate.passes(&notice()));
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
