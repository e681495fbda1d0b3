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
//! Pods and outside hosts are dual-stack, and every case runs over both
//! families: each probe is sent once to the peer's IPv4 address and once to
//! its IPv6 address, with the same expectation. Policy text may use
//! placeholders, filled per family from the fixture: `{EXT_NET}` (the
//! outside /24 or /64), `{EXT}` and `{EXT2}` (the outside hosts' /32 or
//! /128), `{POD_NET}` (the agent's pod range), `{HOST}` (the node address
//! pods probe as `host`), `{ANY}` (`0.0.0.0/0` or `::/0`), `{ECHO}` (an
//! `icmps` field for the family's echo request) and `{WORLD}` (the name of
//! the reserved identity outside addresses have: `world`, or `world-ipv6`
//! as in a dual-stack Cilium). A policy that reads the
//! same for both families is imported once and both families' probes run
//! together; one that differs is imported, probed and deleted per family.
//!
//! [`TwoNodes`] runs the same tables' pod-to-pod probes with the pods on
//! two nodes, through the VXLAN tunnel.

mod evidence;
mod external;
mod probe;
mod send;
pub mod trace;
mod two_nodes;

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub use external::{ExternalHost, ForwardingGuard, Outside};
pub use probe::{Expect, Peer, Probe, Proto};
pub use send::HostListener;
pub use two_nodes::{Outcome, TwoNodes};

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
const PROTO_ICMPV6: u8 = 58;
const REALIZE_TIMEOUT: Duration = Duration::from_secs(10);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// An address family; every case runs over both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

pub const FAMILIES: [Family; 2] = [Family::V4, Family::V6];

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
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
    pod_range6: String,
    host_ip: Ipv4Addr,
    host_ip6: Ipv6Addr,
    ping: Option<Vec<String>>,
}

impl Cluster {
    /// The outside hosts first (so the agent sees their gateways as host
    /// addresses), then the agent (IPv6 on) on a range of its own,
    /// dual-stack pods, servers.
    pub fn start(pods: &[PodSpec]) -> Result<Cluster> {
        let forwarding = ForwardingGuard::enable()?;
        let outside = Outside::create(2, EXTERNAL_TCP_PORT, EXTERNAL_UDP_PORT)?;
        let mut options = AgentOptions::default().with_unique_range();
        options.extra_args.push("--enable-ipv6=true".into());
        let pod_range = options.ipv4_range.clone().context("unique range")?;
        let agent = Agent::start_with(options)?;
        let pod_range6 = agent
            .client()
            .config()?
            .status
            .addressing
            .ipv6
            .context("the agent has no IPv6 addressing")?
            .alloc_range;
        let (host_ip, host_ip6) = (outside.hosts[0].gateway, outside.hosts[0].gateway6);
        let ipcache = agent.cli_ok(&["bpf", "ipcache", "list"])?;
        for row in [format!("{host_ip}/32"), format!("{host_ip6}/128")] {
            if !ipcache
                .lines()
                .any(|l| l.starts_with(&row) && l.contains("identity=1 "))
            {
                bail!("{row} (a host address) is not identity 1 in the ipcache:\n{ipcache}");
            }
        }
        let mut created = Vec::new();
        for spec in pods {
            created.push(Pod::create_dual_stack(&agent, spec.name, spec.labels)?);
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
        let cluster = Cluster {
            _tcp_servers: tcp_servers,
            _udp_servers: udp_servers,
            host_listener: HostListener::start()?,
            monitor: Monitor::start(&agent, &["drop", "policy-verdict"])?,
            pods: created,
            agent,
            outside,
            _forwarding: forwarding,
            pod_range,
            pod_range6,
            host_ip,
            host_ip6,
            ping,
        };
        cluster.settle()?;
        Ok(cluster)
    }

    /// Waits until every outside host reaches the first pod over both
    /// families with no policy in place: the host's neighbour entries and
    /// forwarding for fresh links (IPv6 ones above all) settle before any
    /// case counts a timeout as a drop.
    fn settle(&self) -> Result<()> {
        let pod = Peer::Pod(self.pods[0].name().to_string());
        for i in 0..self.outside.hosts.len() {
            let origin = self.origin(&Peer::External(i));
            for family in FAMILIES {
                let to = self.address(&pod, family);
                let port = POD_TCP_PORTS[0];
                let reached = crate::eventually(SETTLE_TIMEOUT, Duration::from_millis(100), || {
                    send::tcp(&origin, to, port, Duration::from_millis(500))
                });
                if !reached {
                    bail!(
                        "outside host {} cannot reach {to}:{port} without any policy",
                        Peer::External(i)
                    );
                }
            }
        }
        Ok(())
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

    /// Fills the placeholders of a case's policy text for one family.
    pub fn render(&self, policy: &str, family: Family) -> String {
        let ext = |i: usize| host_prefix(self.address(&Peer::External(i), family));
        let (ext_net, pod_net) = match family {
            Family::V4 => (&self.outside.network, &self.pod_range),
            Family::V6 => (&self.outside.network6, &self.pod_range6),
        };
        let (any, echo, world) = family_words(family);
        policy
            .replace("{EXT_NET}", ext_net)
            .replace("{EXT2}", &ext(1))
            .replace("{EXT}", &ext(0))
            .replace("{POD_NET}", pod_net)
            .replace("{HOST}", &self.address(&Peer::Host, family).to_string())
            .replace("{ANY}", any)
            .replace("{ECHO}", echo)
            .replace("{WORLD}", world)
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

    /// Import, probe, check, delete: once for both families when the
    /// policy reads the same for both, else once per family. Returns the
    /// problems found (at most one message per import, with diagnostics)
    /// and the revision of the last deletion.
    fn run_case(&mut self, case: &Case) -> Result<(Vec<String>, u64)> {
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
        let v4 = self.render(case.policy, Family::V4);
        let v6 = self.render(case.policy, Family::V6);
        let passes = if v4 == v6 {
            vec![(v4, FAMILIES.to_vec())]
        } else {
            vec![(v4, vec![Family::V4]), (v6, vec![Family::V6])]
        };
        let mut problems = Vec::new();
        let mut revision = 0;
        for (policy, families) in passes {
            problems.extend(self.run_pass(&policy, &probes, &families)?);
            let out = self.agent.cli_ok(&["policy", "delete", "--all"])?;
            revision = parse_revision(&out)?;
        }
        Ok((problems, revision))
    }

    /// Imports `policy`, sends every probe over each of `families` at once
    /// and checks them; leaves the policy in place.
    fn run_pass(
        &mut self,
        policy: &str,
        probes: &[Probe],
        families: &[Family],
    ) -> Result<Option<String>> {
        let file = self.agent.temp_dir().join("case-policy.yaml");
        std::fs::write(&file, policy)?;
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
        let sent: Vec<(&Probe, Family)> = families
            .iter()
            .flat_map(|&family| probes.iter().map(move |p| (p, family)))
            .collect();
        let shots: Vec<Shot> = sent.iter().map(|(p, f)| self.aim(p, *f)).collect();
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
        for (&(probe, family), (passed, src_port)) in sent.iter().zip(&outcomes) {
            if self.is_skipped(probe) {
                continue;
            }
            let mut problem = |why: String| {
                problems.push(why);
                suspects.extend(
                    [&probe.from, &probe.to]
                        .into_iter()
                        .filter_map(|p| p.pod_name()),
                );
            };
            if let Some(why) = self.trace_disagrees(probe, family, *passed, &ipcache)? {
                problem(why);
            }
            if *passed != probe.expect.passes() {
                problem(format!(
                    "probe `{probe}` over {family}: the real packet {}",
                    if *passed { "passed" } else { "was dropped" }
                ));
                continue;
            }
            let flow = self.flow(probe, family, *src_port);
            if let Err(why) = evidence::check(&mut self.monitor, &flow, *passed, probe.expect) {
                problem(format!(
                    "probe `{probe}` over {family}: the monitor disagrees: {why}"
                ));
            }
        }
        Ok((!problems.is_empty()).then(|| {
            format!(
                "{}\n{}",
                problems.join("\n"),
                self.diagnostics(policy, &suspects)
            )
        }))
    }

    /// `cilium policy trace` for the probe, against what the real packet
    /// met: a message when they disagree.
    fn trace_disagrees(
        &self,
        probe: &Probe,
        family: Family,
        passed: bool,
        ipcache: &trace::Ipcache,
    ) -> Result<Option<String>> {
        let peer = |p: &Peer| {
            trace::peer(
                p,
                ipcache,
                |name| self.pod(name).endpoint_id(),
                |p| self.address(p, family),
            )
        };
        let port = probe.port.unwrap_or(self.host_listener.port());
        let client = self.agent.client();
        let ipv6 = family == Family::V6;
        let (allowed, log) = trace::allowed(
            &client,
            peer(&probe.from),
            peer(&probe.to),
            probe,
            port,
            ipv6,
        )?;
        Ok((allowed != passed).then(|| {
            format!(
                "probe `{probe}` over {family}: `cilium policy trace` says {} but the real packet {}; the trace:\n{}",
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

    fn address(&self, peer: &Peer, family: Family) -> IpAddr {
        match (peer, family) {
            (Peer::Pod(name), Family::V4) => self.pod(name).ip().into(),
            (Peer::Pod(name), Family::V6) => {
                let pod = self.pod(name);
                pod.ip6()
                    .unwrap_or_else(|| panic!("pod {name} has no IPv6 address"))
                    .into()
            }
            (Peer::Host, Family::V4) => self.host_ip.into(),
            (Peer::Host, Family::V6) => self.host_ip6.into(),
            (Peer::External(i), Family::V4) => self.outside.hosts[*i].address.into(),
            (Peer::External(i), Family::V6) => self.outside.hosts[*i].address6.into(),
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
    fn aim(&self, probe: &Probe, family: Family) -> Shot {
        Shot {
            origin: self.origin(&probe.from),
            dst: self.address(&probe.to, family),
            port: probe.port.unwrap_or(self.host_listener.port()),
            proto: probe.proto,
            passes: probe.expect.passes(),
            ping: self.ping.clone(),
        }
    }

    fn flow(&self, probe: &Probe, family: Family, src_port: Option<u16>) -> Flow {
        Flow {
            src_ip: (probe.from != Peer::Host)
                .then(|| self.address(&probe.from, family).to_string()),
            src_identity: (probe.from == Peer::Host).then_some(IDENTITY_HOST),
            src_port,
            dst_ip: self.address(&probe.to, family).to_string(),
            dst_port: match probe.proto {
                Proto::Icmp => None,
                _ => Some(probe.port.unwrap_or(self.host_listener.port())),
            },
            protocol: match (probe.proto, family) {
                (Proto::Icmp, Family::V6) => PROTO_ICMPV6,
                (proto, _) => proto.number(),
            },
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
            let ip6 = pod.ip6().map(|ip| format!(" {ip}")).unwrap_or_default();
            let _ = write!(
                text,
                "`cilium bpf policy get {id}` ({name}, {}{ip6}, identity {identity}):\n{}\n",
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
    dst: IpAddr,
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

/// The family's `{ANY}`, `{ECHO}` and `{WORLD}`.
fn family_words(family: Family) -> (&'static str, &'static str, &'static str) {
    match family {
        Family::V4 => ("0.0.0.0/0", "type: 8, family: IPv4", "world"),
        Family::V6 => ("::/0", "type: 128, family: IPv6", "world-ipv6"),
    }
}

/// A single address as a CIDR prefix (`/32` or `/128`).
fn host_prefix(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
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
