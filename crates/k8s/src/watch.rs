//! A watch that survives the API server: list, then watch from the list's
//! resourceVersion, resume from the last one seen, relist when the server
//! says it is too old, and back off (never a busy loop) while the server is
//! away. Callers see plain changes; after a relist, objects deleted while
//! the watch was down come out as deletions, so nothing stale lingers and
//! nothing is re-created for nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{stream, Stream, StreamExt};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// What a watch reports.
#[derive(Debug, Clone)]
pub enum Change<K> {
    /// Created, changed, or seen again in a relist (unchanged objects
    /// arrive again too: callers compare).
    Applied(K),
    /// Gone (also: gone while the watch was down).
    Deleted(K),
    /// Every object of the watch is known: after the first list and after
    /// each relist.
    Synced,
    /// The API server cannot be reached or refused; the watch retries.
    Lost(String),
}

/// Watches `api` filtered by `config`, forever.
pub fn watch<K>(api: Api<K>, config: watcher::Config) -> impl Stream<Item = Change<K>> + Send
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let mut mirror = Mirror::default();
    watcher(api, config)
        .backoff(Retry::default())
        .flat_map(move |event| stream::iter(mirror.apply(event)))
}

const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Waits between attempts while the API server is away: doubling from
/// 0.2 s to at most 5 s, so a server back from a restart is found within
/// seconds and a lost one is asked a few times a minute, never in a loop.
struct Retry {
    next: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { next: FIRST_RETRY }
    }
}

impl Iterator for Retry {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.next;
        self.next = (self.next * 2).min(LAST_RETRY);
        Some(wait)
    }
}

impl Backoff for Retry {
    fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }
}

/// The objects the watch has reported, to tell what a relist dropped.
struct Mirror<K> {
    known: BTreeMap<String, K>,
    /// Keys seen since a relist began.
    relisted: Option<BTreeMap<String, ()>>,
}

impl<K> Default for Mirror<K> {
    fn default() -> Self {
        Mirror {
            known: BTreeMap::new(),
            relisted: None,
        }
    }
}

fn key<K: Resource>(object: &K) -> String {
    match object.namespace() {
        Some(ns) => format!("{ns}/{}", object.name_any()),
        None => object.name_any(),
    }
}

impl<K: Resource + Clone> Mirror<K> {
    fn apply(&mut self, event: Result<Event<K>, watcher::Error>) -> Vec<Change<K>> {
        match event {
            Err(e) => vec![Change::Lost(e.to_string())],
            Ok(Event::Apply(object)) => {
                self.known.insert(key(&object), object.clone());
                vec![Change::Applied(object)]
            }
            Ok(Event::Delete(object)) => {
                self.known.remove(&key(&object));
                vec![Change::Deleted(object)]
            }
            Ok(Event::Init) => {
                self.relisted = Some(BTreeMap::new());
                Vec::new()
            }
            Ok(Event::InitApply(object)) => {
                let k = key(&object);
                if let Some(seen) = &mut self.relisted {
                    seen.insert(k.clone(), ());
                }
                self.known.insert(k, object.clone());
                vec![Change::Applied(object)]
            }
            Ok(Event::InitDone) => {
                let seen = self.relisted.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .known
                    .keys()
                    .filter(|k| !seen.contains_key(*k))
                    .cloned()
                    .collect();
                let mut changes: Vec<Change<K>> = gone
                    .iter()
                    .filter_map(|k| self.known.remove(k))
                    .map(Change::Deleted)
                    .collect();
                changes.push(Change::Synced);
                changes
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Namespace;

    fn ns(name: &str) -> Namespace {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
    }

    fn names(changes: &[Change<Namespace>]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::Applied(o) => format!("+{}", o.name_any()),
                Change::Deleted(o) => format!("-{}", o.name_any()),
                Change::Synced => "synced".into(),
                Change::Lost(_) => "lost".into(),
            })
            .collect()
    }

    #[test]
    fn retries_back_off_to_five_seconds_and_start_over_after_success() {
        let mut retry = Retry::default();
        let waits: Vec<u64> = retry
            .by_ref()
            .take(7)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000]);
        retry.reset();
        assert_eq!(retry.next(), Some(FIRST_RETRY));
    }

    #[test]
    fn a_relist_reports_what_vanished_meanwhile() {
        let mut mirror = Mirror::default();
        let mut all = Vec::new();
        for event in [
            Event::Init,
            Event::InitApply(ns("a")),
            Event::InitApply(ns("b")),
            Event::InitDone,
            Event::Apply(ns("c")),
            // The server was away; b and c were deleted meanwhile.
            Event::Init,
            Event::InitApply(ns("a")),
            Event::InitDone,
        ] {
            all.extend(mirror.apply(Ok(event)));
        }
        assert_eq!(
            names(&all),
            ["+a", "+b", "synced", "+c", "+a", "-b", "-c", "synced"]
        );
    }
}
