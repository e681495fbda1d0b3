//! Measurement 2: a pod created the way a kubelet creates one → reachable,
//! under policy, from a pod on another node. The interval starts just
//! before the Pod object is created and ends when the first connection
//! from the prober on the next node completes; a CNP lets `app=prober`
//! into `app=fresh` pods on the bench port, and nothing else.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use testbed::bench::entry::step;
use testbed::bench::signals;
use testbed::cluster::{Cluster, ClusterPod};
use testbed::{netns, TcpServer};

use crate::objects::{NAMESPACE, PORT};
use crate::sampler;

/// How long a new pod may take to become reachable.
const LIMIT: Duration = Duration::from_secs(15);
const PROBE_PAUSE: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct PodSample {
    pub node: usize,
    /// `k8s_pod` returned: Pod object created, CNI ADD done, status Ready.
    pub ready: Duration,
    /// The first connection from the other node completed (attempt start).
    pub reachable: Option<Duration>,
    /// Attempts that failed before it.
    pub failed_attempts: usize,
}

/// The new pods and their servers, kept until the end of the bench (they
/// are part of the steady state measured afterwards).
pub struct NewPods {
    // Servers stop before their pods go.
    pub servers: Vec<TcpServer>,
    pub pods: Vec<ClusterPod>,
}

pub fn measure(
    cluster: &Cluster,
    probers: &[ClusterPod],
    count: usize,
    started: Instant,
) -> Result<(Vec<PodSample>, NewPods)> {
    let nodes = cluster.len();
    let mut samples = Vec::new();
    let mut kept = NewPods {
        servers: Vec::new(),
        pods: Vec::new(),
    };
    for i in 0..count {
        signals::check()?;
        if i % 10 == 0 {
            step(started, &format!("new pod {}/{count}", i + 1));
        }
        let node = i % nodes;
        let prober = &probers[(node + 1) % nodes];
        let t0 = Instant::now();
        let pod = cluster.k8s_pod(
            node,
            NAMESPACE,
            &format!("fresh-{i:03}"),
            &["app=fresh"],
            &[],
        )?;
        let ready = t0.elapsed();
        // The container's process, listening as soon as it runs.
        kept.servers.push(pod.serve_tcp(PORT)?);
        let to = SocketAddr::from((pod.ip(), PORT));
        let (reachable, failed_attempts) = netns::run_in(&prober.namespace().path(), || {
            let mut failed = 0;
            while t0.elapsed() < LIMIT && !signals::stopped() {
                let at = Instant::now();
                if sampler::connects(to) {
                    return (Some(at - t0), failed);
                }
                failed += 1;
                std::thread::sleep(PROBE_PAUSE);
            }
            (None, failed)
        })?;
        samples.push(PodSample {
            node,
            ready,
            reachable,
            failed_attempts,
        });
        kept.pods.push(pod);
    }
    Ok((samples, kept))
}

/// The policy holds for the new pods: a pod without the prober label on
/// another node is refused, a prober is let in.
pub fn check_policy(stranger: &ClusterPod, probers: &[ClusterPod], new: &NewPods) -> Result<()> {
    let nodes = probers.len();
    for pod in new
        .pods
        .iter()
        .filter(|p| p.node() != stranger.node())
        .take(4)
    {
        let to = SocketAddr::from((pod.ip(), PORT));
        let refused = netns::run_in(&stranger.namespace().path(), || {
            (0..3).all(|_| !sampler::connects(to))
        })?;
        ensure!(
            refused,
            "{} reached {} (not allowed)",
            stranger.name(),
            pod.name()
        );
        let prober = &probers[(pod.node() + 1) % nodes];
        ensure!(
            prober.tcp_connect(pod.ip(), PORT, Duration::from_secs(1)),
            "{} cannot reach {} (allowed)",
            prober.name(),
            pod.name()
        );
    }
    Ok(())
}
