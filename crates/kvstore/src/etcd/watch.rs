//! A prefix watch on etcd that survives outages: it resumes after the last revision it
//! delivered, and replays the prefix when it cannot resume (history compacted, store
//! reset to an older revision).

use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions};
use tokio::sync::mpsc;

use super::{to_key_value, Etcd};
use crate::backend::Backend;
use crate::types::{Revision, WatchEvent};

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(super) struct PrefixWatch {
    pub etcd: Etcd,
    pub prefix: String,
    pub tx: mpsc::Sender<WatchEvent>,
}

/// Why one watch stream ended.
enum Interrupted {
    /// The consumer dropped the [`Watch`](crate::Watch): stop for good.
    ConsumerGone,
    /// The revision to resume from is gone: replay before watching again.
    MustReplay,
    /// etcd went away or cancelled the stream: reconnect and resume.
    Broken,
}

impl PrefixWatch {
    pub async fn run(self, from_revision: Option<Revision>) {
        // The revision of the last event delivered (or the replay's revision).
        let mut delivered = from_revision.map(|from| from - 1);
        let mut backoff = MIN_BACKOFF;
        loop {
            let mut progressed = false;
            let outcome = match delivered {
                None => self.replay().await.map(|revision| {
                    progressed = true;
                    delivered = Some(revision);
                }),
                Some(_) => Ok(()),
            };
            let outcome = match (outcome, delivered) {
                (Ok(()), Some(revision)) => {
                    self.follow(revision, &mut delivered, &mut progressed).await
                }
                (Ok(()), None) => unreachable!("a successful replay sets the revision"),
                (Err(interrupted), _) => interrupted,
            };
            match outcome {
                Interrupted::ConsumerGone => return,
                Interrupted::MustReplay => {
                    delivered = None;
                    continue;
                }
                Interrupted::Broken => {}
            }
            if progressed {
                backoff = MIN_BACKOFF;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Sends the prefix's content framed by `ListStart`/`ListDone`; returns its revision.
    async fn replay(&self) -> Result<Revision, Interrupted> {
        let listing = self
            .etcd
            .list_prefix(&self.prefix)
            .await
            .map_err(|_| Interrupted::Broken)?;
        self.send(WatchEvent::ListStart).await?;
        for kv in listing.kvs {
            let put = WatchEvent::Put {
                key: kv.key,
                value: kv.value,
                revision: kv.mod_revision,
            };
            self.send(put).await?;
        }
        self.send(WatchEvent::ListDone {
            revision: listing.revision,
        })
        .await?;
        Ok(listing.revision)
    }

    /// Streams changes after `after` until the stream breaks.
    async fn follow(
        &self,
        after: Revision,
        delivered: &mut Option<Revision>,
        progressed: &mut bool,
    ) -> Interrupted {
        let prefix = self.prefix.as_str();
        // A store restored from scratch counts revisions from 1 again: resuming at our
        // old revision would wait for changes that never come.
        let probe = |mut c: etcd_client::Client| async move {
            let options = GetOptions::new().with_prefix().with_count_only();
            c.get(prefix, Some(options)).await
        };
        let current = match self.etcd.call("watch", prefix, probe).await {
            Ok(response) => response.header().map_or(0, |h| h.revision()),
            Err(_) => return Interrupted::Broken,
        };
        if current < after {
            return Interrupted::MustReplay;
        }
        let open = |mut c: etcd_client::Client| async move {
            let options = WatchOptions::new()
                .with_prefix()
                .with_start_revision(after + 1);
            c.watch(prefix, Some(options)).await
        };
        let mut stream = match self.etcd.call("watch", prefix, open).await {
            Ok(stream) => stream,
            Err(_) => return Interrupted::Broken,
        };
        *progressed = true;
        loop {
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) | Err(_) => return Interrupted::Broken,
            };
            if response.compact_revision() > 0 {
                return Interrupted::MustReplay;
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let kv = to_key_value(kv);
                let revision = kv.mod_revision;
                let event = match event.event_type() {
                    EventType::Put => WatchEvent::Put {
                        key: kv.key,
                        value: kv.value,
                        revision,
                    },
                    EventType::Delete => WatchEvent::Delete {
                        key: kv.key,
                        revision,
                    },
                };
                if let Err(interrupted) = self.send(event).await {
                    return interrupted;
                }
                *delivered = Some(revision);
            }
            if response.canceled() {
                // e.g. the member lost its leader: reconnect (maybe elsewhere) and resume.
                return Interrupted::Broken;
            }
        }
    }

    async fn send(&self, event: WatchEvent) -> Result<(), Interrupted> {
        self.tx
            .send(event)
            .await
            .map_err(|_| Interrupted::ConsumerGone)
    }
}
