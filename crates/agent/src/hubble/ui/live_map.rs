//! The service map kept up to date flow by flow, so that a page's poll
//! costs the flows stored since its last poll, not a pass over the whole
//! ring. Each query (its filters; the time window only ever moves forward)
//! has a [`LiveMap`]: the matching flows' numbers and edges, oldest first,
//! and a count per edge. An update takes in the flows stored since the last
//! one and forgets, from the front, those that left the ring or the window.
//!
//! Flows are stored in time order except L7 ones, dated by the proxy a
//! little earlier than they arrive; one of those that falls out of the
//! window behind a newer flow stays counted until that flow leaves too.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use hubble::proto::flow::Flow;
use hubble::FlowRing;

use super::view::{edge_of, Edge, Node, ServiceMap};

/// Queries whose maps are kept; the least recently polled goes first.
const KEPT_QUERIES: usize = 8;

#[derive(Debug, PartialEq, Eq, Hash)]
struct EdgeKey {
    from: String,
    to: String,
    verdict: &'static str,
}

struct Entry {
    seq: u64,
    time_ms: Option<i64>,
    /// `None` for a reply: counted as matching, drawn as no edge.
    edge: Option<Arc<EdgeKey>>,
}

/// The map of one query's matching flows in the ring.
pub struct LiveMap {
    /// The number of the next flow to take in.
    next: u64,
    since_ms: Option<i64>,
    entries: VecDeque<Entry>,
    edges: HashMap<Arc<EdgeKey>, u64>,
    nodes: HashMap<String, Node>,
}

/// What a poll reads from a [`LiveMap`].
pub struct MapPage {
    pub map: ServiceMap,
    /// Matching flows in the ring.
    pub matched: usize,
    /// The oldest matching flow's number.
    pub first: Option<u64>,
}

impl LiveMap {
    pub fn new(since_ms: Option<i64>) -> Self {
        LiveMap {
            next: 0,
            since_ms,
            entries: VecDeque::new(),
            edges: HashMap::new(),
            nodes: HashMap::new(),
        }
    }

    /// Whether this map can move on to `since_ms`: a window that starts
    /// earlier would need flows it has forgotten.
    fn can_move_to(&self, since_ms: Option<i64>) -> bool {
        match (self.since_ms, since_ms) {
            (None, None) => true,
            (Some(old), Some(new)) => new >= old,
            _ => false,
        }
    }

    /// Takes in the flows stored since the last update that `matches`
    /// selects (it must select only flows at or after `since_ms`), and
    /// forgets those that left the ring or the window.
    pub fn update(
        &mut self,
        ring: &FlowRing,
        since_ms: Option<i64>,
        matches: impl Fn(&Flow) -> bool,
    ) {
        let tail = ring.tail(self.next);
        for (i, flow) in tail.flows.iter().enumerate() {
            if matches(flow) {
                self.add(tail.first_seq + i as u64, flow);
            }
        }
        self.next = tail.first_seq + tail.flows.len() as u64;
        self.since_ms = since_ms;
        while let Some(front) = self.entries.front() {
            let too_old = since_ms.is_some_and(|s| front.time_ms.is_none_or(|t| t < s));
            if front.seq >= tail.oldest && !too_old {
                break;
            }
            let gone = self.entries.pop_front().expect("front exists");
            if let Some(edge) = gone.edge {
                self.uncount(&edge);
            }
        }
    }

    fn add(&mut self, seq: u64, flow: &Flow) {
        let edge = edge_of(flow).map(|(from, to, verdict)| {
            let key = EdgeKey {
                from: from.id.clone(),
                to: to.id.clone(),
                verdict,
            };
            self.nodes.entry(from.id.clone()).or_insert(from);
            self.nodes.entry(to.id.clone()).or_insert(to);
            // One shared key per edge: an entry costs a pointer.
            let key = match self.edges.get_key_value(&key) {
                Some((shared, _)) => shared.clone(),
                None => Arc::new(key),
            };
            *self.edges.entry(key.clone()).or_default() += 1;
            key
        });
        self.entries.push_back(Entry {
            seq,
            time_ms: flow_ms(flow),
            edge,
        });
    }

    fn uncount(&mut self, edge: &Arc<EdgeKey>) {
        if let Some(count) = self.edges.get_mut(edge) {
            *count -= 1;
            if *count == 0 {
                self.edges.remove(edge);
            }
        }
    }

    /// The map now (edges and boxes in id order, as `view::service_map`
    /// draws them); boxes no edge touches any more are forgotten.
    pub fn page(&mut self) -> MapPage {
        let mut edges: Vec<Edge> = self
            .edges
            .iter()
            .map(|(key, count)| Edge {
                from: key.from.clone(),
                to: key.to.clone(),
                verdict: key.verdict,
                count: *count,
            })
            .collect();
        edges.sort_by(|a, b| (&a.from, &a.to, a.verdict).cmp(&(&b.from, &b.to, b.verdict)));
        let used: HashSet<&str> = edges
            .iter()
            .flat_map(|e| [e.from.as_str(), e.to.as_str()])
            .collect();
        self.nodes.retain(|id, _| used.contains(id.as_str()));
        let mut nodes: Vec<Node> = self.nodes.values().cloned().collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        MapPage {
            map: ServiceMap { nodes, edges },
            matched: self.entries.len(),
            first: self.entries.front().map(|e| e.seq),
        }
    }
}

/// A flow's time in Unix milliseconds.
pub fn flow_ms(flow: &Flow) -> Option<i64> {
    flow.time
        .as_ref()
        .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// The maps of the queries open pages poll, by query.
#[derive(Default)]
pub struct LiveMaps {
    /// (query key, map), most recently polled last.
    maps: Vec<(String, LiveMap)>,
}

impl LiveMaps {
    /// Brings the map of query `key` up to date and reads it. A query not
    /// kept, or whose window moved back, starts over from the ring.
    pub fn poll(
        &mut self,
        key: &str,
        ring: &FlowRing,
        since_ms: Option<i64>,
        matches: impl Fn(&Flow) -> bool,
    ) -> MapPage {
        let kept = self
            .maps
            .iter()
            .position(|(k, m)| k == key && m.can_move_to(since_ms));
        let mut map = match kept {
            Some(i) => self.maps.remove(i).1,
            None => {
                self.maps.retain(|(k, _)| k != key);
                if self.maps.len() >= KEPT_QUERIES {
                    self.maps.remove(0);
                }
                LiveMap::new(since_ms)
            }
        };
        map.update(ring, since_ms, matches);
        let page = map.page();
        self.maps.push((key.to_string(), map));
        page
    }
}

#[cfg(test)]
mod tests {
    use super::super::view::service_map;
    use super::*;
    use crate::hubble::ui::view::ServiceMap;
    use hubble::proto::flow::{Endpoint, Verdict};
    use hubble::timestamp::Timestamp;

    fn pod(name: &str) -> Endpoint {
        Endpoint {
            namespace: "shop".into(),
            pod_name: name.into(),
            identity: 1000 + name.len() as u32,
            ..Default::default()
        }
    }

    /// Flow `n`: one of a few pods to another, replies and drops mixed in,
    /// dated `n` seconds after the epoch.
    fn flow(n: u64) -> Flow {
        let names = ["a", "bb", "ccc", "dddd"];
        Flow {
            source: Some(pod(names[(n % 4) as usize])),
            destination: Some(pod(names[(n / 4 % 4) as usize])),
            verdict: if n.is_multiple_of(3) {
                Verdict::Dropped
            } else {
                Verdict::Forwarded
            } as i32,
            is_reply: Some(n.is_multiple_of(5)),
            time: Some(Timestamp {
                seconds: n as i64,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    fn full(ring: &FlowRing, matches: impl Fn(&Flow) -> bool) -> (ServiceMap, usize) {
        let snap = ring.snapshot(false);
        let selected: Vec<&Flow> = snap
            .flows
            .iter()
            .map(|f| f.as_ref())
            .filter(|f| matches(f))
            .collect();
        (service_map(selected.iter().copied()), selected.len())
    }

    #[test]
    fn the_live_map_equals_a_full_pass_as_the_ring_fills_and_evicts() {
        let ring = FlowRing::new(50);
        let mut maps = LiveMaps::default();
        let dropped = |f: &Flow| f.verdict == Verdict::Dropped as i32;
        let mut n = 0;
        // Polls between bursts of 7 flows, past capacity several times.
        for _ in 0..30 {
            for _ in 0..7 {
                ring.push(flow(n));
                n += 1;
            }
            let all = maps.poll("all", &ring, None, |_| true);
            let (want, matched) = full(&ring, |_| true);
            assert_eq!((all.map, all.matched), (want, matched), "after {n} flows");
            assert_eq!(all.first, Some(n.saturating_sub(50)));
            let drops = maps.poll("dropped", &ring, None, dropped);
            let (want, matched) = full(&ring, dropped);
            assert_eq!(
                (drops.map, drops.matched),
                (want, matched),
                "drops after {n}"
            );
        }
    }

    #[test]
    fn a_moving_window_forgets_older_flows_and_a_wider_one_starts_over() {
        let ring = FlowRing::new(100);
        for n in 0..40 {
            ring.push(flow(n));
        }
        let mut maps = LiveMaps::default();
        let after = |s: i64| move |f: &Flow| flow_ms(f).is_some_and(|t| t >= s);
        for since_s in [0, 10, 25] {
            let since = since_s * 1000;
            let page = maps.poll("q", &ring, Some(since), after(since));
            let (want, matched) = full(&ring, after(since));
            assert_eq!(
                (page.map, page.matched),
                (want, matched),
                "since {since_s}s"
            );
            assert_eq!(page.first, Some(since_s as u64));
        }
        // Back to 5 s: flows 5..25 were forgotten, so the map starts over.
        let page = maps.poll("q", &ring, Some(5000), after(5000));
        assert_eq!(page.matched, 35);
        assert_eq!(page.map, full(&ring, after(5000)).0);
    }

    #[test]
    fn only_the_most_recently_polled_queries_are_kept() {
        let ring = FlowRing::new(10);
        ring.push(flow(1));
        let mut maps = LiveMaps::default();
        for q in 0..KEPT_QUERIES + 3 {
            maps.poll(&q.to_string(), &ring, None, |_| true);
        }
        assert_eq!(maps.maps.len(), KEPT_QUERIES);
        assert_eq!(maps.maps[0].0, "3");
    }
}
