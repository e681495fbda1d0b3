//! The embedded backend: an in-process, in-memory store with etcd's semantics
//! (revisions, leases that expire, resumable prefix watches), for a single node.
//! Optionally persists its lease-less keys to a journal file.

mod state;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::error::{KvError, Result};
use crate::journal::Journal;
use crate::types::{BoxFuture, KeyValue, LeaseId, Listing, Revision, WatchEvent};
use crate::watch::{Watch, WATCH_BUFFER};
use state::{Change, State};

/// How often expired leases are reaped.
const REAP_INTERVAL: Duration = Duration::from_millis(50);
/// File name used inside the directory given to [`Embedded::persistent`].
pub const STORE_FILE: &str = "kvstore.json";

/// The in-process store. Create it inside a tokio runtime (it runs a lease reaper).
#[derive(Debug)]
pub struct Embedded {
    state: Arc<Mutex<State>>,
    journal: Option<Mutex<Journal>>,
    reaper: AbortHandle,
}

impl Embedded {
    /// An empty store that lives as long as the process.
    pub fn new() -> Self {
        Self::with_state(State::new(Default::default(), 0), None)
    }

    /// A store whose lease-less keys are kept in `dir/kvstore.json` across restarts.
    pub fn persistent(dir: impl AsRef<Path>) -> Result<Self> {
        let path = dir.as_ref().join(STORE_FILE);
        let journal = Journal::open(&path)?;
        Ok(Self::with_state(
            State::new(journal.keys().clone(), journal.revision()),
            Some(Mutex::new(journal)),
        ))
    }

    fn with_state(state: State, journal: Option<Mutex<Journal>>) -> Self {
        let state = Arc::new(Mutex::new(state));
        let reaper = tokio::spawn(reap_expired_leases(Arc::downgrade(&state))).abort_handle();
        Embedded {
            state,
            journal,
            reaper,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Runs a mutation and persists the result when a lease-less key changed.
    fn mutate<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut state = self.lock();
        let result = change(&mut state);
        let changes = state.take_durable_changes();
        if let (false, Some(journal)) = (changes.is_empty(), &self.journal) {
            let mut journal = journal.lock().unwrap_or_else(|poison| poison.into_inner());
            journal.apply(changes, state.revision())?;
        }
        result
    }
}

impl Default for Embedded {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.reaper.abort();
    }
}

async fn reap_expired_leases(state: Weak<Mutex<State>>) {
    let mut tick = tokio::time::interval(REAP_INTERVAL);
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        let mut state = state.lock().unwrap_or_else(|poison| poison.into_inner());
        state.expire(Instant::now());
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Backend for Embedded {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        ready(Ok(self.lock().get(key)))
    }

    fn list_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Listing>> {
        ready(Ok(self.lock().list(prefix)))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<Revision>> {
        ready(self.mutate(|state| state.put(key, value, lease)))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        ready(self.mutate(|state| Ok(state.remove(key))))
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<u64>> {
        ready(self.mutate(|state| Ok(state.remove_prefix(prefix))))
    }

    fn create_only<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<bool>> {
        ready(self.mutate(|state| {
            if state.get(key).is_some() {
                return Ok(false);
            }
            state.put(key, value, lease).map(|_| true)
        }))
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<bool>> {
        ready(self.mutate(|state| {
            if state.get(key).map(|kv| kv.value) != expected {
                return Ok(false);
            }
            state.put(key, new, lease).map(|_| true)
        }))
    }

    fn update_if_revision<'a>(
        &'a self,
        key: &'a str,
        mod_revision: Revision,
        new: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<bool>> {
        ready(self.mutate(|state| {
            if state.get(key).map_or(0, |kv| kv.mod_revision) != mod_revision {
                return Ok(false);
            }
            state.put(key, new, lease).map(|_| true)
        }))
    }

    fn delete_if_revision<'a>(
        &'a self,
        key: &'a str,
        mod_revision: Revision,
    ) -> BoxFuture<'a, Result<bool>> {
        ready(self.mutate(|state| {
            if state.get(key).map(|kv| kv.mod_revision) != Some(mod_revision) {
                return Ok(false);
            }
            Ok(state.remove(key))
        }))
    }

    fn set_if_exists<'a>(
        &'a self,
        guard: &'a str,
        key: &'a str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<bool>> {
        ready(self.mutate(|state| {
            if state.get(guard).is_none() {
                return Ok(false);
            }
            state.put(key, value, lease).map(|_| true)
        }))
    }

    /// Unlike etcd, sub-second TTLs are honoured exactly (handy in tests).
    fn grant_lease(&self, ttl: Duration) -> BoxFuture<'_, Result<LeaseId>> {
        ready(Ok(self.lock().grant(ttl, Instant::now())))
    }

    fn keep_alive_lease(&self, lease: LeaseId) -> BoxFuture<'_, Result<bool>> {
        ready(Ok(self.lock().keep_alive(lease, Instant::now())))
    }

    fn revoke_lease(&self, lease: LeaseId) -> BoxFuture<'_, Result<()>> {
        let result = self.mutate(|state| match state.revoke(lease) {
            true => Ok(()),
            false => Err(KvError::LeaseNotFound(lease)),
        });
        ready(result)
    }

    fn watch_prefix(&self, prefix: &str, from_revision: Option<Revision>) -> Watch {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let task = tokio::spawn(run_watch(
            Arc::downgrade(&self.state),
            prefix.to_string(),
            from_revision,
            tx,
        ));
        Watch::new(rx, task.abort_handle())
    }

    fn status(&self) -> BoxFuture<'_, Result<String>> {
        let state = self.lock();
        let persisted = match &self.journal {
            Some(journal) => {
                let journal = journal.lock().unwrap_or_else(|poison| poison.into_inner());
                format!(", persisted to {}", journal.path().display())
            }
            None => String::new(),
        };
        ready(Ok(format!(
            "embedded: revision {}{persisted}",
            state.revision()
        )))
    }
}

/// Feeds one watch: replay or resume, then live changes; replays again after lagging.
async fn run_watch(
    state: Weak<Mutex<State>>,
    prefix: String,
    from_revision: Option<Revision>,
    tx: mpsc::Sender<WatchEvent>,
) {
    let Some((mut backlog, mut changes, mut last)) = start(&state, &prefix, from_revision) else {
        return;
    };
    loop {
        for event in backlog.drain(..) {
            if tx.send(event).await.is_err() {
                return;
            }
        }
        match changes.recv().await {
            Ok(change) if change.revision > last && change.key.starts_with(&prefix) => {
                last = change.revision;
                backlog.push(to_event(&change));
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // The consumer fell behind the live buffer: start over with a replay.
                let Some(restart) = start(&state, &prefix, None) else {
                    return;
                };
                (backlog, changes, last) = restart;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

type WatchStart = (Vec<WatchEvent>, broadcast::Receiver<Arc<Change>>, Revision);

/// Takes the initial events and subscribes to later changes under one lock, so that no
/// change falls between the two.
fn start(
    state: &Weak<Mutex<State>>,
    prefix: &str,
    from_revision: Option<Revision>,
) -> Option<WatchStart> {
    let state = state.upgrade()?;
    let state = state.lock().unwrap_or_else(|poison| poison.into_inner());
    let changes = state.subscribe();
    let last = state.revision();
    let resumed = from_revision.and_then(|from| state.changes_since(from, prefix));
    let events = match resumed {
        Some(history) => history.iter().map(|change| to_event(change)).collect(),
        None => {
            let listing = state.list(prefix);
            let mut events = vec![WatchEvent::ListStart];
            events.extend(listing.kvs.into_iter().map(|kv| WatchEvent::Put {
                key: kv.key,
                value: kv.value,
                revision: kv.mod_revision,
            }));
            events.push(WatchEvent::ListDone {
                revision: listing.revision,
            });
            events
        }
    };
    Some((events, changes, last))
}

fn to_event(change: &Change) -> WatchEvent {
    match &change.value {
        Some(value) => WatchEvent::Put {
            key: change.key.clone(),
            value: value.clone(),
            revision: change.revision,
        },
        None => WatchEvent::Delete {
            key: change.key.clone(),
            revision: change.revision,
        },
    }
}
