//! Measurement 1: `kubectl apply` of a CiliumNetworkPolicy → enforced on
//! every node. Each change flips whether the probers reach the servers
//! (one server per node, probed from a pod on the next node), and three
//! signals say when each node enforces it:
//!
//! - traffic: the start of the first connection attempt of the run of
//!   attempts with the new outcome that the pair settles on;
//! - the agents' API: the first poll in which the server's endpoint on the
//!   node reports a realized policy revision at least the one the node
//!   wrote into the object's status;
//! - the object's status: the first time the watch shows every node
//!   enforcing it at a new `localPolicyRevision`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use testbed::bench::entry::step;
use testbed::bench::signals;
use testbed::cluster::{Cluster, ClusterPod};

use crate::objects::{self, PORT};
use crate::sampler::{self, Sampler};
use crate::status_watch::{self, NodeStatus, StatusWatch};

/// How long one change may take to show on every signal.
const LIMIT: Duration = Duration::from_secs(15);
/// Probe pause between connection attempts (after each).
const PROBE_PAUSE: Duration = Duration::from_millis(10);
/// Pause between two reads of an endpoint's policy revision.
const POLL_PAUSE: Duration = Duration::from_millis(10);
/// A pair has settled on an outcome after this many attempts spanning
/// this long in a row.
const SETTLE_SAMPLES: usize = 3;
const SETTLE_SPAN: Duration = Duration::from_millis(150);

/// What one change measured; times from just before `kubectl apply` ran.
#[derive(Debug, Clone)]
pub struct ChangeSample {
    pub object: String,
    /// The wall clock at the start, in µs since the epoch (the audit log's
    /// clock).
    pub start_unix_us: u64,
    pub created: bool,
    pub allows: bool,
    pub kubectl: Duration,
    /// Every node's status entry shows the change (watch).
    pub status: Option<Duration>,
    /// Every node's server endpoint realized the node's status revision.
    pub revision: Option<Duration>,
    /// Every pair's traffic flipped (the latest pair).
    pub traffic: Option<Duration>,
    /// Per pair (indexed by the server's node).
    pub traffic_per_node: Vec<Option<Duration>>,
    /// The widest gap between a pair's last old-outcome attempt and its
    /// first new-outcome one: how precise `traffic` is.
    pub traffic_resolution: Duration,
    /// The revision each node wrote into the status for this change.
    pub revisions: BTreeMap<String, u64>,
}

/// The probers and pollers, one per node `i`: the prober runs in the pod
/// on node `i + 1` and connects to node `i`'s server; the poller reads
/// node `i`'s server endpoint.
pub struct Signals {
    probers: Vec<Sampler<bool>>,
    pollers: Vec<Sampler<u64>>,
    nodes: Vec<String>,
}

impl Signals {
    pub fn start(
        cluster: &Cluster,
        servers: &[ClusterPod],
        probers: &[ClusterPod],
    ) -> Result<Signals> {
        let n = servers.len();
        let mut signals = Signals {
            probers: Vec::new(),
            pollers: Vec::new(),
            nodes: (0..n).map(|i| cluster.node(i).name().to_string()).collect(),
        };
        for (i, server) in servers.iter().enumerate() {
            let prober = &probers[(i + 1) % n];
            let to = SocketAddr::from((server.ip(), PORT));
            signals.probers.push(Sampler::start(
                Some(prober.namespace().path()),
                PROBE_PAUSE,
                move || sampler::connects(to),
            )?);
            let client = cluster.node(server.node()).client();
            let id = server.endpoint_id()?.to_string();
            signals
                .pollers
                .push(Sampler::start(None, POLL_PAUSE, move || {
                    client
                        .endpoint_get(&id)
                        .map_or(0, |e| e.status.policy.realized.policy_revision)
                })?);
        }
        Ok(signals)
    }

    fn probe(&self, on: bool) {
        for p in &self.probers {
            p.set_on(on);
        }
    }

    /// Probes until every pair settled on `allowed` (within `limit`).
    fn wait_settled(&self, allowed: bool, limit: Duration) -> Result<bool> {
        self.probe(true);
        let deadline = Instant::now() + limit;
        loop {
            signals::check()?;
            if self.all_settled(allowed) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn all_settled(&self, allowed: bool) -> bool {
        let now = Instant::now();
        self.probers.iter().all(|p| {
            sampler::settled(
                &p.samples(),
                |ok| ok == allowed,
                SETTLE_SAMPLES,
                SETTLE_SPAN,
                now,
            )
            .is_some()
        })
    }
}

/// Applies `count` changes one at a time and measures each.
pub fn measure(
    cluster: &Cluster,
    signals: &Signals,
    watch: &mut StatusWatch,
    count: usize,
    started: Instant,
) -> Result<Vec<ChangeSample>> {
    let mut out = Vec::new();
    for k in 0..count {
        if k % 10 == 0 {
            step(started, &format!("policy change {}/{count}", k + 1));
        }
        let change = objects::change(k);
        // The previous state holds on every pair before the change.
        for p in &signals.probers {
            p.clear();
        }
        if !signals.wait_settled(!change.allows, LIMIT)? {
            bail!(
                "before change {k}: the probers did not all settle on {}",
                if change.allows { "denied" } else { "allowed" }
            );
        }
        if !watch.running() {
            bail!("the kubectl status watch ended");
        }
        let before = status_watch::last_before(&watch.seen(), &change.object, Instant::now());
        for p in &signals.pollers {
            p.clear();
            p.set_on(true);
        }
        let wall = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as u64;
        let t0 = Instant::now();
        cluster.control_plane().apply(&change.yaml)?;
        let kubectl = t0.elapsed();
        let mut sample = follow(signals, watch, &change, t0, kubectl, &before)?;
        sample.start_unix_us = wall;
        signals.probe(false);
        for p in &signals.pollers {
            p.set_on(false);
        }
        out.push(sample);
    }
    Ok(out)
}

/// Watches every signal until all three showed the change on every node,
/// or [`LIMIT`] passed.
fn follow(
    signals: &Signals,
    watch: &StatusWatch,
    change: &objects::Change,
    t0: Instant,
    kubectl: Duration,
    before: &BTreeMap<String, NodeStatus>,
) -> Result<ChangeSample> {
    let mut sample = ChangeSample {
        object: change.object.clone(),
        start_unix_us: 0,
        created: change.created,
        allows: change.allows,
        kubectl,
        status: None,
        revision: None,
        traffic: None,
        traffic_per_node: vec![None; signals.probers.len()],
        traffic_resolution: Duration::ZERO,
        revisions: BTreeMap::new(),
    };
    let deadline = t0 + LIMIT;
    loop {
        signals::check()?;
        let now = Instant::now();
        if sample.status.is_none() {
            let seen = watch.seen();
            if let Some(hit) =
                status_watch::first_reported(&seen, &change.object, t0, &signals.nodes, before)
            {
                sample.status = Some(hit.at - t0);
                sample.revisions = hit
                    .nodes
                    .iter()
                    .map(|(n, s)| (n.clone(), s.revision))
                    .collect();
            }
        }
        if sample.revision.is_none() && sample.status.is_some() {
            sample.revision = realized(signals, &sample.revisions, t0);
        }
        if sample.traffic.is_none() && signals.all_settled(change.allows) {
            for (i, p) in signals.probers.iter().enumerate() {
                let flip = sampler::settled(
                    &p.samples(),
                    |ok| ok == change.allows,
                    SETTLE_SAMPLES,
                    SETTLE_SPAN,
                    now,
                );
                if let Some((first, previous)) = flip {
                    sample.traffic_per_node[i] = Some(first.saturating_duration_since(t0));
                    let gap =
                        previous.map_or(Duration::ZERO, |p| first.saturating_duration_since(p));
                    sample.traffic_resolution = sample.traffic_resolution.max(gap);
                }
            }
            sample.traffic = sample.traffic_per_node.iter().copied().max().flatten();
        }
        let done = sample.status.is_some() && sample.revision.is_some() && sample.traffic.is_some();
        if done || now >= deadline {
            return Ok(sample);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// When the last node's server endpoint first reported a realized revision
/// of at least the one its node wrote into the status.
fn realized(signals: &Signals, revisions: &BTreeMap<String, u64>, t0: Instant) -> Option<Duration> {
    let mut latest = Duration::ZERO;
    for (node, poller) in signals.nodes.iter().zip(&signals.pollers) {
        let wanted = *revisions.get(node)?;
        let first = poller
            .samples()
            .into_iter()
            .find(|s| s.at >= t0 && s.value >= wanted)?;
        latest = latest.max(first.at - t0);
    }
    Some(latest)
}
