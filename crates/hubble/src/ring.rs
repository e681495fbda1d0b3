//! The flow store: the newest `capacity` flows, oldest first, plus a
//! broadcast of every new flow for clients that follow.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::proto::flow::Flow;

/// A following client that falls this far behind loses flows (and is told
/// how many), the ring itself never waits.
const FOLLOW_BACKLOG: usize = 4096;

pub struct FlowRing {
    inner: Mutex<Inner>,
    capacity: usize,
    tx: broadcast::Sender<Arc<Flow>>,
}

struct Inner {
    flows: VecDeque<Arc<Flow>>,
    seen: u64,
}

/// What a request reads: the flows stored at one instant and, if it asked
/// to follow, every flow stored after that instant.
pub struct Snapshot {
    pub flows: Vec<Arc<Flow>>,
    /// The sequence number of `flows[0]`: flows are numbered from 0 as
    /// they are stored, so a number names one flow for good.
    pub first_seq: u64,
    pub follow: Option<broadcast::Receiver<Arc<Flow>>>,
}

/// What [`FlowRing::tail`] reads: the newest flows, numbered from
/// `first_seq` on, and the number of the oldest flow still stored.
pub struct Tail {
    pub oldest: u64,
    pub first_seq: u64,
    pub flows: Vec<Arc<Flow>>,
}

impl FlowRing {
    /// A ring of `capacity` flows (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        FlowRing {
            inner: Mutex::new(Inner {
                flows: VecDeque::with_capacity(capacity),
                seen: 0,
            }),
            capacity,
            tx: broadcast::channel(FOLLOW_BACKLOG).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a flow, evicting the oldest when full.
    pub fn push(&self, flow: Flow) {
        let flow = Arc::new(flow);
        let evicted = {
            let mut inner = self.lock();
            let evicted = if inner.flows.len() == self.capacity {
                inner.flows.pop_front()
            } else {
                None
            };
            inner.flows.push_back(flow.clone());
            inner.seen += 1;
            // Under the lock, so a snapshot sees each flow exactly once: in
            // its copy or on its receiver.
            let _ = self.tx.send(flow);
            evicted
        };
        // Freeing a flow's strings is most of a push at capacity: not
        // while readers wait for the lock.
        drop(evicted);
    }

    pub fn snapshot(&self, follow: bool) -> Snapshot {
        let inner = self.lock();
        Snapshot {
            flows: inner.flows.iter().cloned().collect(),
            first_seq: inner.seen - inner.flows.len() as u64,
            follow: follow.then(|| self.tx.subscribe()),
        }
    }

    /// The flows numbered `from` or later (those still stored), for a
    /// reader that has seen the ones before: it copies only what is new.
    pub fn tail(&self, from: u64) -> Tail {
        let inner = self.lock();
        let oldest = inner.seen - inner.flows.len() as u64;
        let skip = from.saturating_sub(oldest).min(inner.flows.len() as u64) as usize;
        Tail {
            oldest,
            first_seq: oldest + skip as u64,
            flows: inner.flows.range(skip..).cloned().collect(),
        }
    }

    /// Flows stored now.
    pub fn len(&self) -> usize {
        self.lock().flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Flows stored since the start, evicted ones included.
    pub fn seen(&self) -> u64 {
        self.lock().seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(n: u32) -> Flow {
        Flow {
            drop_reason: n,
            ..Default::default()
        }
    }

    #[test]
    fn keeps_the_newest_capacity_flows_in_order() {
        let ring = FlowRing::new(3);
        for n in 0..5 {
            ring.push(flow(n));
        }
        let kept: Vec<u32> = ring
            .snapshot(false)
            .flows
            .iter()
            .map(|f| f.drop_reason)
            .collect();
        assert_eq!(kept, [2, 3, 4]);
        assert_eq!(ring.snapshot(false).first_seq, 2);
        assert_eq!((ring.len(), ring.capacity(), ring.seen()), (3, 3, 5));
    }

    #[test]
    fn a_tail_copies_only_the_flows_from_its_number_on() {
        let ring = FlowRing::new(3);
        for n in 0..5 {
            ring.push(flow(n));
        }
        let reasons = |t: &Tail| t.flows.iter().map(|f| f.drop_reason).collect::<Vec<_>>();
        let tail = ring.tail(3);
        assert_eq!(
            (tail.oldest, tail.first_seq, reasons(&tail)),
            (2, 3, vec![3, 4])
        );
        // Older than the ring: what is stored; past its end: nothing.
        let all = ring.tail(0);
        assert_eq!((all.first_seq, reasons(&all)), (2, vec![2, 3, 4]));
        let none = ring.tail(9);
        assert_eq!((none.first_seq, none.flows.len()), (5, 0));
    }

    #[test]
    fn a_follower_gets_what_came_after_its_snapshot() {
        let ring = FlowRing::new(8);
        ring.push(flow(1));
        let mut snap = ring.snapshot(true);
        ring.push(flow(2));
        assert_eq!(snap.flows.len(), 1);
        let next = snap.follow.as_mut().unwrap().try_recv().unwrap();
        assert_eq!(next.drop_reason, 2);
    }
}
