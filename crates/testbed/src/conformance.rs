//! Table-driven policy conformance: a [`Cluster`] of labelled pods around one
//! real agent, plus the node itself and addresses outside the cluster, and a
//! runner that, case by case, imports a policy, sends real packets
//! ([`Probe`]s), checks each against its expectation, against what the
//! monitor reported and against `cilium policy trace` (which must reach the
//! real packet's verdict), and deletes the policy again.
//!
//! Cases share the pods but not their outcome: every probe is a new flow (UDP
//! probes use fresh source ports), each case starts from "no policy", and all
//! probes of a case run at once to keep expected drops cheap.
//!
//! Policy text may use placeholders filled from the fixture: `{EXT_NET}` (the
//! outside /24), `{EXT}` and `{EXT2}` (the outside hosts' addresses),
//! `{POD_NET}` (the agent's pod range) and `{HOST}` (the node address pods
//! probe as `host`).

mod evidence;
mod external;
mod probe;
mod send;
pub mod trace;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub use external::{ExternalHost, ForwardingGuard, Outside};
pub use probe::{Expect, Peer, Probe, Proto};
pub use send::HostListener;

use crate::{Agent, AgentOptions, Monitor, Pod, TcpServer, UdpServer};
use evidence::Flow;
use send::Origin;

/// TCP ports every pod serves.
pub const POD_TCP_PORTS: [u16; 4] = [80, 81, 8080, 9000];
/// UDP ports every pod echoes on.
pub const POD_UDP_PORTS: [u16; 2] = [53, 80];
/// What each outside host serves.
pub const EXTERNAL_TCP_PORT: u16 = 80;
pub const EXTERNAL_UDP_PORT: u16 = 53;

/// An expected drop: no answer this long.
const DROP_TIMEOUT: Duration = Duration::from_millis(400);
/// An expected pass gets this long per step.
const PASS_TIMEOUT: Duration = Duration::from_secs(2);
/// Cilium's reserved identity of the local node.
const IDENTITY_HOST: u32 = 1;
const REALIZE_TIMEOUT: Duration = Duration::from_secs(10);

/// A pod of the fixture: name and labels (`source:key=value`).
#[derive(Debug, Clone, Copy)]
pub struct PodSpec {
    pub name: &'static str,
    pub labels: &'static [&'static str],
}

/// One row of a conformance table.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    /// Cilium rules, CiliumNetworkPolicy or NetworkPolicy objects (YAML/JSON).
    pub policy: &'static str,
    /// Lines in [`Probe`] syntax.
    pub probes: &'static [&'static str],
}

/// The fixture. Fields drop in order: servers and the monitor, then the
/// pods (their endpoints need the agent), the agent, and the outside.
pub struct Cluster {
    _tcp_servers: Vec<TcpServer>,
    _udp_servers: Vec<UdpServer>,
    host_listener: HostListener,
    monitor: Monitor,
    pods: Vec<Pod>,
    agent: Agent,
    outside: Outside,
    _forwarding: ForwardingGuard,
    pod_range: String,
    host_ip: Ipv4Addr,
    ping: Option<Vec<String>>,
}

impl Cluster {
    /// The outside hosts first (so the agent sees their gateways as host
    /// addresses), then the agent on a range of its own, pods, servers.
    pub fn start(pods: &[PodSpec]) -> Result<Cluster> {
        let forwarding = ForwardingGuard::enable()?;
        let outside = Outside::create(2, EXTERNAL_TCP_PORT, EXTERNAL_UDP_PORT)?;
        let options = AgentOptions::default().with_unique_range();
        let pod_range = options.ipv4_range.clone().context("unique range")?;
        let agent = Agent::start_with(options)?;
        let host_ip = outside.hosts[0].gateway;
        let ipcache = agent.cli_ok(&["bpf", "ipcache", "list"])?;
        let host_row = format!("{host_ip}/32");
        if !ipcache
            .lines()
            .any(|l| l.starts_with(&host_row) && l.contains("identity=1 "))
        {
            bail!("{host_ip} (a host address) is not identity 1 in the ipcache:\n{ipcache}");
        }
        let mut created = Vec::new();
        for spec in pods {
            created.push(Pod::create(&agent, spec.name, spec.labels)?);
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
        let ping = send::find_ping();
        if ping.is_none() {
            eprintln!("no ping binary (ping or busybox ping): ICMP probes are skipped");
        }
        Ok(Cluster {
            _tcp_servers: tcp_servers,
            _udp_servers: udp_servers,
            host_listener: HostListener::start()?,
            monitor: Monitor::start(&agent, &["drop", "policy-verdict"])?,
            pods: created,
            agent,
            outside,
            _forwarding: forwarding,
            pod_range,
            host_ip,
            ping,
        })
    }

    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    pub fn pod(&self, name: &str) -> &Pod {
        self.pods
            .iter()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("no pod {name:?} in this fixture"))
    }

    /// Fills the placeholders of a case's policy text.
    pub fn render(&self, policy: &str) -> String {
        policy
            .replace("{EXT_NET}", &self.outside.network)
            .replace("{EXT2}", &self.outside.hosts[1].address.to_string())
            .replace("{EXT}", &self.outside.hosts[0].address.to_string())
            .replace("{POD_NET}", &self.pod_range)
            .replace("{HOST}", &self.host_ip.to_string())
    }

    /// Runs every case; returns one message per disagreement (empty = all
    /// conform). Leaves no policy behind.
    pub fn run(&mut self, construct: &str, cases: &[Case]) -> Vec<String> {
        let mut failures = Vec::new();
        let mut last_revision = None;
        for case in cases {
            match self.run_case(case) {
                Ok((problems, revision)) => {
                    last_revision = Some(revision);
                    failures.extend(
                        problems
                            .into_iter()
                            .map(|p| format!("[{construct}] case {:?}: {p}", case.name)),
                    );
                }
                Err(e) => failures.push(format!("[{construct}] case {:?}: {e:#}", case.name)),
            }
        }
        if let Some(revision) = last_revision {
            if let Err(e) = self.wait_realized(revision) {
                failures.push(format!("[{construct}] deleting the last policy: {e:#}"));
            }
        }
        failures
    }

    /// Starts a cluster, runs the table and panics listing every failure.
    pub fn check(construct: &str, pods: &[PodSpec], cases: &[Case]) {
        let mut cluster = Cluster::start(pods).expect("the conformance fixture starts");
        let failures = cluster.run(construct, cases);
        assert!(
            failures.is_empty(),
            "{} of the {} {construct} cases disagree with Cilium's semantics:\n\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n\n")
        );
    }

    /// Import, probe, check, delete. Returns the problems found (at most one
    /// message, with diagnostics) and the revision of the deletion.
    fn run_case(&mut self, case: &Case) -> Result<(Vec<String>, u64)> {
        let policy = self.render(case.policy);
        let probes: Vec<Probe> = case.probes.iter().map(|l| Probe::parse(l)).collect();
        let distinct: BTreeSet<String> = probes
            .iter()
            .map(|p| format!("{} {} {:?} {:?}", p.from, p.to, p.proto, p.port))
            .collect();
        assert_eq!(
            distinct.len(),
            probes.len(),
            "case {:?} repeats a flow",
            case.name
        );
        for probe in &probes {
            for peer in [&probe.from, &probe.to] {
                if let Some(name) = peer.pod_name() {
                    self.pod(name);
                }
            }
        }

        let file = self.agent.temp_dir().join("case-policy.yaml");
        std::fs::write(&file, &policy)?;
        let out = self
            .agent
            .cli(&["policy", "import", &file.display().to_string()]);
        if !out.status.success() {
            bail!(
                "`cilium policy import` rejected the policy ({}): {}\npolicy:\n{policy}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        self.wait_realized(parse_revision(&String::from_utf8_lossy(&out.stdout))?)?;

        self.monitor.clear();
        let shots: Vec<Shot> = probes.iter().map(|p| self.aim(p)).collect();
        let outcomes: Vec<(bool, Option<u16>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = shots.iter().map(|s| scope.spawn(|| s.fire())).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a probe thread panicked"))
                .collect()
        });

        let mut problems = Vec::new();
        let mut suspects = BTreeSet::new();
        let ipcache = trace::Ipcache::read(&self.agent.client())?;
        for (probe, (passed, src_port)) in probes.iter().zip(&outcomes) {
            if self.is_skipped(probe) {
                continue;
            }
            if let Some(why) = self.trace_disagrees(probe, *passed, &ipcache)? {
                problems.push(why);
                suspects.extend(
                    [&probe.from, &probe.to]
                        .into_iter()
                        .filter_map(|p| p.pod_name()),
                );
            }
            if *passed != probe.expect.passes() {
                problems.push(format!(
                    "probe `{probe}`: the real packet {}",
                    if *passed { "passed" } else { "was dropped" }
                ));
                suspects.extend(
                    [&probe.from, &probe.to]
                        .into_iter()
                        .filter_map(|p| p.pod_name()),
                );
                continue;
            }
            let flow = self.flow(probe, *src_port);
            if let Err(why) = evidence::check(&mut self.monitor, &flow, *passed, probe.expect) {
                problems.push(format!("probe `{probe}`: the monitor disagrees: {why}"));
                suspects.extend(
                    [&probe.from, &probe.to]
                        .into_iter()
                        .filter_map(|p| p.pod_name()),
                );
            }
        }
        if !problems.is_empty() {
            problems = vec![format!(
                "{}\n{}",
                problems.join("\n"),
                self.diagnostics(&policy, &suspects)
            )];
        }

        let out = self.agent.cli_ok(&["policy", "delete", "--all"])?;
        Ok((problems, parse_revision(&out)?))
    }

    /// `cilium policy trace` for the probe, against what the real packet
    /// met: a message when they disagree.
    fn trace_disagrees(
        &self,
        probe: &Probe,
        passed: bool,
        ipcache: &trace::Ipcache,
    ) -> Result<Option<String>> {
        let peer = |p: &Peer| {
            trace::peer(
                p,
                ipcache,
                |name| self.pod(name).endpoint_id(),
                |p| self.address(p),
            )
        };
        let port = probe.port.unwrap_or(self.host_listener.port());
        let client = self.agent.client();
        let (allowed, log) =
            trace::allowed(&client, peer(&probe.from), peer(&probe.to), probe, port)?;
        Ok((allowed != passed).then(|| {
            format!(
                "probe `{probe}`: `cilium policy trace` says {} but the real packet {}; the trace:\n{}",
                if allowed { "allowed" } else { "denied" },
                if passed { "passed" } else { "was dropped" },
                indent(&log)
            )
        }))
    }

    fn wait_realized(&self, revision: u64) -> Result<()> {
        for pod in &self.pods {
            pod.wait_for_policy_revision(&self.agent, revision, REALIZE_TIMEOUT)?;
        }
        Ok(())
    }

    fn is_skipped(&self, probe: &Probe) -> bool {
        probe.proto == Proto::Icmp && self.ping.is_none()
    }

    fn address(&self, peer: &Peer) -> Ipv4Addr {
        match peer {
            Peer::Pod(name) => self.pod(name).ip(),
            Peer::Host => self.host_ip,
            Peer::External(i) => self.outside.hosts[*i].address,
        }
    }

    fn origin(&self, peer: &Peer) -> Origin {
        match peer {
            Peer::Pod(name) => send::netns_origin(&self.pod(name).namespace().path()),
            Peer::Host => Origin::Host,
            Peer::External(i) => send::netns_origin(&self.outside.hosts[*i].netns().path()),
        }
    }

    /// Everything a probe thread needs, resolved from the fixture.
    fn aim(&self, probe: &Probe) -> Shot {
        Shot {
            origin: self.origin(&probe.from),
            dst: self.address(&probe.to),
            port: probe.port.unwrap_or(self.host_listener.port()),
            proto: probe.proto,
            passes: probe.expect.passes(),
            ping: self.ping.clone(),
        }
    }

    fn flow(&self, probe: &Probe, src_port: Option<u16>) -> Flow {
        Flow {
            src_ip: (probe.from != Peer::Host).then(|| self.address(&probe.from).to_string()),
            src_identity: (probe.from == Peer::Host).then_some(IDENTITY_HOST),
            src_port,
            dst_ip: self.address(&probe.to).to_string(),
            dst_port: match probe.proto {
                Proto::Icmp => None,
                _ => Some(probe.port.unwrap_or(self.host_listener.port())),
            },
            protocol: probe.proto.number(),
        }
    }

    /// The policy and the policy maps of the pods involved, for the lead.
    fn diagnostics(&self, policy: &str, pods: &BTreeSet<&str>) -> String {
        let mut text = format!("policy:\n{}\n", indent(policy));
        for name in pods {
            let pod = self.pod(name);
            let id = pod.endpoint_id().to_string();
            let identity = pod.identity(&self.agent).unwrap_or_default();
            let map = self
                .agent
                .cli_ok(&["bpf", "policy", "get", &id])
                .unwrap_or_else(|e| format!("{e:#}"));
            let _ = write!(
                text,
                "`cilium bpf policy get {id}` ({name}, {}, identity {identity}):\n{}\n",
                pod.ip(),
                indent(&map)
            );
        }
        if let Ok(ipcache) = self.agent.cli_ok(&["bpf", "ipcache", "list"]) {
            let _ = write!(text, "`cilium bpf ipcache list`:\n{}", indent(&ipcache));
        }
        text
    }
}

/// One probe, ready to send from any thread.
struct Shot {
    origin: Origin,
    dst: Ipv4Addr,
    port: u16,
    proto: Proto,
    passes: bool,
    ping: Option<Vec<String>>,
}

impl Shot {
    /// Sends the probe: (the exchange completed, UDP source port).
    fn fire(&self) -> (bool, Option<u16>) {
        let timeout = if self.passes {
            PASS_TIMEOUT
        } else {
            DROP_TIMEOUT
        };
        match self.proto {
            Proto::Tcp => (send::tcp(&self.origin, self.dst, self.port, timeout), None),
            Proto::Udp => {
                let (passed, source) = send::udp(&self.origin, self.dst, self.port, timeout);
                (passed, Some(source))
            }
            Proto::Icmp => match &self.ping {
                Some(ping) => {
                    let wait = if self.passes { 2 } else { 1 };
                    (send::icmp(&self.origin, ping, self.dst, wait), None)
                }
                // Skipped: reported as what was expected.
                None => (self.passes, None),
            },
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// `Revision: N` from `cilium policy import|delete|get`.
pub fn parse_revision(cli_output: &str) -> Result<u64> {
    cli_output
        .lines()
        .find_map(|l| l.strip_prefix("Revision:"))
        .and_then(|r| r.trim().parse().ok())
        .with_context(|| format!("no `Revision: N` in {cli_output:?}"))
}
