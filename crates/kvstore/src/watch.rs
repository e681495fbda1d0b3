//! The consumer side of a prefix watch.

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::types::WatchEvent;

/// How many events may wait for a slow consumer before the producer pauses.
pub(crate) const WATCH_BUFFER: usize = 1024;

/// A running prefix watch. Events arrive in revision order; dropping the `Watch` stops
/// the background task that feeds it.
#[derive(Debug)]
pub struct Watch {
    events: mpsc::Receiver<WatchEvent>,
    task: AbortHandle,
}

impl Watch {
    pub(crate) fn new(events: mpsc::Receiver<WatchEvent>, task: AbortHandle) -> Self {
        Watch { events, task }
    }

    /// The next event; `None` only after the backend itself went away.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        self.events.recv().await
    }

    /// An event if one is ready now.
    pub fn try_next(&mut self) -> Option<WatchEvent> {
        self.events.try_recv().ok()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
