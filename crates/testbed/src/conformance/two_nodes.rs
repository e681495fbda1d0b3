//! The conformance tables with the pods spread over two nodes
//! ([`crate::cluster`]: an agent per node, etcd, VXLAN between them): the
//! same [`Case`]s and probes, sent between the pods over both families, so
//! every probe between pods on different nodes crosses the tunnel and is
//! judged by the destination node against the identity the VNI carries.
//!
//! Only pod-to-pod probes run here: `host` and the outside hosts are the
//! single-node fixture's (from another node the host is `remote-node`), and
//! a case whose policy names them (`{EXT}`, `{HOST}`, ...) is skipped. The
//! verdicts are the real packets'; the monitor and `cilium policy trace`
//! are checked by the single-node runner.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{
    family_words, parse_revision, send, Case, Family, PodSpec, Probe, Shot, FAMILIES,
    POD_TCP_PORTS, POD_UDP_PORTS, REALIZE_TIMEOUT,
};
use crate::cluster::{Cluster, ClusterOptions, ClusterPod};
use crate::{TcpServer, UdpServer};

/// Placeholders only the single-node fixture can fill.
const NODE_LOCAL_PLACEHOLDERS: [&str; 5] = ["{EXT_NET}", "{EXT}", "{EXT2}", "{HOST}", "{POD_NET}"];
/// Other nodes' endpoints reach a node's ipcache through etcd.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Two nodes and the fixture's pods on them. Fields drop in order: the
/// servers, the pods (CNI `DEL` needs their agents), then the nodes.
pub struct TwoNodes {
    _tcp_servers: Vec<TcpServer>,
    _udp_servers: Vec<UdpServer>,
    pods: Vec<ClusterPod>,
    nodes: Cluster,
    ping: Option<Vec<String>>,
}

/// What running the tables found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub failures: Vec<String>,
    /// Cases run, and cases skipped (nothing pod-to-pod, or a policy
    /// naming the host or the outside).
    pub cases_run: usize,
    pub cases_skipped: usize,
}

impl TwoNodes {
    /// Dual-stack pods from `pods`, those named in `on_second_node` on
    /// node 1 and the rest on node 0, each serving the fixture's ports;
    /// returns once pods on either node reach the other's over both
    /// families.
    pub fn start(pods: &[PodSpec], on_second_node: &[&str]) -> Result<TwoNodes> {
        let options = ClusterOptions {
            nodes: 2,
            etcd_members: 1,
        };
        let nodes = Cluster::start_with_agent_args(options, &["--enable-ipv6=true"])?;
        let mut created = Vec::new();
        for spec in pods {
            let node = usize::from(on_second_node.contains(&spec.name));
            let pod = nodes.pod(node, spec.name, spec.labels)?;
            if pod.ip6().is_none() {
                bail!("pod {} on node {node} has no IPv6 address", spec.name);
            }
            created.push(pod);
        }
        let mut tcp_servers = Vec::new();
        let mut udp_servers = Vec::new();
        for pod in &created {
            for port in POD_TCP_PORTS {
                tcp_servers.push(pod.serve_tcp(port)?);
            }
            for port in POD_UDP_PORTS {
                udp_servers.push(pod.serve_udp(port)?);
            }
        }
        let lab = TwoNodes {
            _tcp_servers: tcp_servers,
            _udp_servers: udp_servers,
            pods: created,
            nodes,
            ping: send::find_ping(),
        };
        lab.settle()?;
        Ok(lab)
    }

    /// Without policy, a pod on each node reaches one on the other over
    /// both families: the remote endpoints are in both ipcaches before a
    /// timeout may count as a drop.
    fn settle(&self) -> Result<()> {
        let first_on = |node: usize| {
            self.pods
                .iter()
                .find(|p| p.node() == node)
                .with_context(|| format!("no pod on node {node}: nothing crosses the tunnel"))
        };
        let (a, b) = (first_on(0)?, first_on(1)?);
        for (from, to) in [(a, b), (b, a)] {
            for family in FAMILIES {
                let dst = address(to, family);
                let origin = send::netns_origin(&from.namespace().path());
                let port = POD_TCP_PORTS[0];
                let reached = crate::eventually(SETTLE_TIMEOUT, Duration::from_millis(100), || {
                    send::tcp(&origin, dst, port, Duration::from_millis(500))
                });
                if !reached {
                    bail!(
                        "{} (node {}) cannot reach {dst}:{port} on node {} without any policy\n{}",
                        from.name(),
                        from.node(),
                        to.node(),
                        self.nodes.describe()
                    );
                }
            }
        }
        Ok(())
    }

    fn pod(&self, name: &str) -> &ClusterPod {
        self.pods
            .iter()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("no pod {name:?} in this fixture"))
    }

    /// Runs every case's pod-to-pod probes; leaves no policy behind.
    pub fn run(&self, construct: &str, cases: &[Case]) -> Outcome {
        let mut outcome = Outcome::default();
        for case in cases {
            match self.run_case(case) {
                Ok(None) => outcome.cases_skipped += 1,
                Ok(Some(problems)) => {
                    outcome.cases_run += 1;
                    outcome.failures.extend(
                        problems
                            .into_iter()
                            .map(|p| format!("[{construct}, two nodes] case {:?}: {p}", case.name)),
                    );
                }
                Err(e) => outcome.failures.push(format!(
                    "[{construct}, two nodes] case {:?}: {e:#}",
                    case.name
                )),
            }
        }
        outcome
    }

    /// Import on both nodes, probe, check, delete: once for both families
    /// when the policy reads the same for both, else once per family.
    /// `None`: the case has nothing for this fixture.
    fn run_case(&self, case: &Case) -> Result<Option<Vec<String>>> {
        let probes: Vec<Probe> = case
            .probes
            .iter()
            .map(|l| Probe::parse(l))
            .filter(|p| p.from.pod_name().is_some() && p.to.pod_name().is_some())
            .collect();
        let v4 = render(case.policy, Family::V4);
        let v6 = render(case.policy, Family::V6);
        if probes.is_empty() || NODE_LOCAL_PLACEHOLDERS.iter().any(|p| v4.contains(p)) {
            return Ok(None);
        }
        let passes = if v4 == v6 {
            vec![(v4, FAMILIES.to_vec())]
        } else {
            vec![(v4, vec![Family::V4]), (v6, vec![Family::V6])]
        };
        let mut problems = Vec::new();
        for (policy, families) in passes {
            self.import_everywhere(&policy)?;
            problems.extend(self.probe(&policy, &probes, &families));
            self.delete_everywhere()?;
        }
        Ok(Some(problems))
    }

    /// Sends every probe over each of `families` at once; one message per
    /// probe whose packet disagreed, the policy after the last.
    fn probe(&self, policy: &str, probes: &[Probe], families: &[Family]) -> Vec<String> {
        let sent: Vec<(&Probe, Family)> = families
            .iter()
            .flat_map(|&family| probes.iter().map(move |p| (p, family)))
            .filter(|(p, _)| !(p.proto == super::Proto::Icmp && self.ping.is_none()))
            .collect();
        let shots: Vec<Shot> = sent.iter().map(|(p, f)| self.aim(p, *f)).collect();
        let outcomes: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = shots.iter().map(|s| scope.spawn(|| s.fire().0)).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a probe thread panicked"))
                .collect()
        });
        let mut problems: Vec<String> = sent
            .iter()
            .zip(outcomes)
            .filter(|((probe, _), passed)| *passed != probe.expect.passes())
            .map(|((probe, family), passed)| {
                let node = |peer: &super::Peer| self.pod(peer.pod_name().unwrap()).node();
                format!(
                    "probe `{probe}` over {family} (node {} -> node {}): the real packet {}",
                    node(&probe.from),
                    node(&probe.to),
                    if passed { "passed" } else { "was dropped" }
                )
            })
            .collect();
        if !problems.is_empty() {
            problems.push(format!("policy:\n{policy}"));
        }
        problems
    }

    fn aim(&self, probe: &Probe, family: Family) -> Shot {
        let from = self.pod(probe.from.pod_name().expect("a pod probe"));
        let to = self.pod(probe.to.pod_name().expect("a pod probe"));
        Shot {
            origin: send::netns_origin(&from.namespace().path()),
            dst: address(to, family),
            port: probe.port.unwrap_or(0),
            proto: probe.proto,
            passes: probe.expect.passes(),
            ping: self.ping.clone(),
        }
    }

    /// `cilium policy import` on every node (each agent holds its own
    /// rules), then waits until its pods enforce it.
    fn import_everywhere(&self, policy: &str) -> Result<()> {
        for node in self.nodes.nodes() {
            let file = node.agent().temp_dir().join("case-policy.yaml");
            std::fs::write(&file, policy)?;
            let out = node.cli(&["policy", "import", &file.display().to_string()]);
            if !out.status.success() {
                bail!(
                    "`cilium policy import` on {} rejected the policy ({}): {}\npolicy:\n{policy}",
                    node.name(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            self.wait_realized(node.index(), &String::from_utf8_lossy(&out.stdout))?;
        }
        Ok(())
    }

    fn delete_everywhere(&self) -> Result<()> {
        for node in self.nodes.nodes() {
            let out = node.cli_ok(&["policy", "delete", "--all"])?;
            self.wait_realized(node.index(), &out)?;
        }
        Ok(())
    }

    /// Waits until node `index`'s pods have realized the revision named in
    /// a `cilium policy` answer.
    fn wait_realized(&self, index: usize, cli_output: &str) -> Result<()> {
        let revision = parse_revision(cli_output)?;
        for pod in self.pods.iter().filter(|p| p.node() == index) {
            let realized = crate::eventually(REALIZE_TIMEOUT, Duration::from_millis(20), || {
                pod.endpoint()
                    .is_ok_and(|ep| ep.status.policy.realized.policy_revision >= revision)
            });
            if !realized {
                bail!(
                    "{} on node {index}: policy revision {revision} not realized within {REALIZE_TIMEOUT:?}",
                    pod.name()
                );
            }
        }
        Ok(())
    }

    /// Runs the tables, panics listing every failure, and says how many
    /// cases ran.
    pub fn check(&self, tables: &[(&str, &[Case])]) {
        let mut failures = Vec::new();
        let mut constructs = BTreeSet::new();
        let (mut run, mut skipped) = (0, 0);
        for (construct, cases) in tables {
            let outcome = self.run(construct, cases);
            failures.extend(outcome.failures);
            run += outcome.cases_run;
            skipped += outcome.cases_skipped;
            constructs.insert(*construct);
        }
        eprintln!(
            "two nodes: {run} cases run over IPv4 and IPv6, {skipped} skipped (host or outside \
             peers only), tables: {constructs:?}"
        );
        assert!(
            failures.is_empty(),
            "{} disagreements with Cilium's semantics across two nodes:\n\n{}\n\n{}",
            failures.len(),
            failures.join("\n\n"),
            self.nodes.describe()
        );
    }
}

fn address(pod: &ClusterPod, family: Family) -> IpAddr {
    match family {
        Family::V4 => pod.ip().into(),
        Family::V6 => pod.ip6().expect("dual-stack pod").into(),
    }
}

/// The family's placeholders that need no fixture address.
fn render(policy: &str, family: Family) -> String {
    let (any, echo, world) = family_words(family);
    policy
        .replace("{ANY}", any)
        .replace("{ECHO}", echo)
        .replace("{WORLD}", world)
}
