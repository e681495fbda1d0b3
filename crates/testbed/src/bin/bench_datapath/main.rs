//! `cilium-bench-datapath`: the datapath benchmark behind `make bench`.
//!
//! Two pods on this node, client and server, measured side by side in
//! three configurations, interleaved round by round:
//! (a) plain routed veth pods with no BPF program (the ceiling),
//! (b) cilium-rs pods, the server's policy allowing the client while 1,000
//!     filler identities and 10,000 other policy entries are loaded,
//! (c) the plain pods behind an iptables FORWARD chain of 10,000
//!     non-matching rules before the matching ACCEPT.
//! The cilium-rs pods are dual-stack: (b) is measured over IPv6 as well,
//! against an IPv6 ceiling pair plumbed like (a), in the same rounds.
//! Then the control plane: `policy import` of 1,000 rules until enforced on
//! 100 endpoints, and the agent's RSS.
//!
//! Everything it creates is released by `Drop` guards, also on Ctrl-C
//! (see `testbed::bench::signals`) and on failure; bench/run.sh sweeps up
//! after a SIGKILL.

mod args;
mod fillers;
mod import;
mod plain;
mod policies;
mod profile;
mod report;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testbed::bench::entry::{self, step};
use testbed::bench::procstat::{self, CpuMeter};
use testbed::bench::servers::{AcceptServer, EchoServer, CONNECT6_PORT, CONNECT_PORT, ECHO6_PORT};
use testbed::bench::{
    agent_under_test, machine, measure, policy_import, process_table, signals, Machine, PlainPod,
    PlainPod6, ServerSet, SysctlOverride,
};
use testbed::{Agent, NetNs, Pod};

use crate::args::Args;
use crate::fillers::Fillers;
use crate::import::ImportBench;
use crate::plain::IptablesChain;
use crate::report::{Config, Metric, ProgCost, Results, Samples};

/// The agent's pod range: room for 1,000+ endpoints, away from the
/// testbed's default (10.200/16) and per-test ranges (10.201-250.x/24).
const AGENT_RANGE: &str = "10.196.0.0/20";
const FILLER_FIRST_IP: Ipv4Addr = Ipv4Addr::new(10, 196, 1, 0);
/// The plain pods of (a) and (c).
const PLAIN_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 197, 0, 1);
const PLAIN_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 197, 0, 10);
const PLAIN_SERVER: Ipv4Addr = Ipv4Addr::new(10, 197, 0, 20);
/// The plain IPv6 pods of (a) over IPv6.
const PLAIN6_GATEWAY: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x197, 0, 0, 0, 0, 0, 1);
const PLAIN6_CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x197, 0, 0, 0, 0, 0, 0x10);
const PLAIN6_SERVER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x197, 0, 0, 0, 0, 0, 0x20);

fn main() -> ExitCode {
    entry::main(Args::parse, run)
}

fn run(args: &Args) -> Result<()> {
    let machine = Machine::probe();
    let tools = [
        machine::tool_version("sockperf", &["--version"]),
        machine::tool_version("iperf3", &["--version"]),
        machine::tool_version("iptables", &["--version"]),
    ];
    let started = Instant::now();
    let agent = agent_under_test::start(started, AGENT_RANGE)?;
    let results = agent_under_test::with_log_tail(&agent, bench(args, &agent, started))?;
    entry::publish(
        &report::render(&machine, &tools, &results),
        args.output.as_deref(),
    )?;
    step(started, "cleaning up (pods, fillers, agent)");
    Ok(())
}

fn bench(args: &Args, agent: &Agent, started: Instant) -> Result<Results> {
    let pid = std::process::id();
    let mut results = Results {
        rounds: args.rounds,
        seconds: args.seconds,
        ..Default::default()
    };
    let agent_pid = process_table::agent_pid(agent.socket())?;

    step(
        started,
        "creating the cilium-rs pods: client, server, probe",
    );
    let client = Pod::create_dual_stack(agent, "bench-client", &["k8s:app=bench-client"])?;
    let server = Pod::create_dual_stack(agent, "bench-server", &["k8s:app=bench-server"])?;
    let server_ip6 = server.ip6().context("the server pod has no IPv6 address")?;
    let probe = Pod::create(
        agent,
        "bench-probe",
        &["k8s:app=bench-probe", "k8s:bench-import=target"],
    )?;
    signals::check()?;

    step(
        started,
        &format!("creating and registering {} filler endpoints", args.fillers),
    );
    let fillers = Fillers::create(&format!("cbench-{pid}-fillers"), args.fillers)?;
    let filler_targets = args.import_targets - 1;
    let registration = fillers.register(agent, FILLER_FIRST_IP, filler_targets)?;
    results.setup.registration_total = registration.total;
    results.setup.registration_first100_ms = registration.mean_ms(0..100);
    let n = registration.each.len();
    results.setup.registration_last100_ms = registration.mean_ms(n.saturating_sub(100)..n);

    step(
        started,
        "importing the steady-state policy (server map ~10,000 entries)",
    );
    let steady_file = agent.temp_dir().join("steady.json");
    std::fs::write(&steady_file, policies::steady_state(args.ports_per_filler))?;
    let t = Instant::now();
    let revision = policy_import::import_file(agent, &steady_file)?;
    server.wait_for_policy_revision(agent, revision, Duration::from_secs(300))?;
    results.setup.steady_import = t.elapsed();
    let policy_dump = agent.cli_ok(&["bpf", "policy", "get", &server.endpoint_id().to_string()])?;
    results.setup.server_policy_lines = policy_dump.lines().count();
    let policy_json = agent.cli_ok(&[
        "bpf",
        "policy",
        "get",
        &server.endpoint_id().to_string(),
        "-o",
        "json",
    ])?;
    results.setup.server_policy_entries = serde_json::from_str::<serde_json::Value>(&policy_json)
        .context("`cilium bpf policy get -o json` is not JSON")?
        .as_array()
        .map_or(0, Vec::len);
    results.setup.endpoints = agent.client().endpoint_list()?.len();
    results.setup.identities = agent.client().identity_list()?.len();
    eprintln!(
        "  server endpoint {}: {} policy map entries (`cilium bpf policy get` prints {} lines); {} endpoints, {} identities",
        server.endpoint_id(),
        results.setup.server_policy_entries,
        results.setup.server_policy_lines,
        results.setup.endpoints,
        results.setup.identities
    );
    signals::check()?;

    step(started, "starting sockperf, iperf3 and accept servers");
    let _servers_b = ServerSet::start(server.namespace())?;
    let _servers_b6 = (
        AcceptServer::start6(server.namespace(), CONNECT6_PORT)?,
        EchoServer::start6(server.namespace(), ECHO6_PORT)?,
    );
    let _probe_server = AcceptServer::start(probe.namespace(), policies::PROBE_PORT)?;

    step(
        started,
        "creating the plain pods of (a)/(c) and the iptables chain",
    );
    let _forwarding = SysctlOverride::set("net.ipv4.ip_forward", "1")?;
    let tag = pid & 0xfffff;
    let plain_client = PlainPod::create(
        &format!("cbench-{pid}-client"),
        &format!("cbc{tag:05x}"),
        PLAIN_CLIENT,
        PLAIN_GATEWAY,
    )?;
    let plain_server = PlainPod::create(
        &format!("cbench-{pid}-server"),
        &format!("cbs{tag:05x}"),
        PLAIN_SERVER,
        PLAIN_GATEWAY,
    )?;
    let _servers_plain = ServerSet::start(plain_server.namespace())?;
    let chain = IptablesChain::create(args.iptables_rules, plain_client.ip(), plain_server.ip())?;
    results.setup.iptables_rules = chain.rule_count()?;

    let _forwarding6 = SysctlOverride::set("net.ipv6.conf.all.forwarding", "1")?;
    let plain6_client = PlainPod6::create(
        &format!("cbench-{pid}-client6"),
        &format!("cb6c{tag:05x}"),
        PLAIN6_CLIENT,
        PLAIN6_GATEWAY,
    )?;
    let plain6_server = PlainPod6::create(
        &format!("cbench-{pid}-server6"),
        &format!("cb6s{tag:05x}"),
        PLAIN6_SERVER,
        PLAIN6_GATEWAY,
    )?;
    let _servers_plain6 = (
        ServerSet::start(plain6_server.namespace())?,
        AcceptServer::start6(plain6_server.namespace(), CONNECT6_PORT)?,
        EchoServer::start6(plain6_server.namespace(), ECHO6_PORT)?,
    );

    let topology = Topology {
        cilium: (client.namespace(), server.ip()),
        plain: (plain_client.namespace(), plain_server.ip()),
        cilium6: (client.namespace(), server_ip6),
        plain6: (plain6_client.namespace(), plain6_server.ip()),
        chain: &chain,
        agent_pid,
    };
    topology.check_reachable()?;

    step(
        started,
        &format!("policy import of {} rules → enforced", args.import_rules),
    );
    let import_file = agent.temp_dir().join("import.json");
    std::fs::write(&import_file, policies::import_set(args.import_rules))?;
    let mut targets: BTreeSet<u16> = registration.endpoint_ids[..filler_targets]
        .iter()
        .copied()
        .collect();
    targets.insert(probe.endpoint_id());
    results.setup.import_rules = args.import_rules;
    results.setup.import_targets = targets.len();
    let importer = ImportBench {
        agent,
        client: &client,
        probe: &probe,
        targets,
        rules_file: &import_file,
    };
    for i in 0..args.rounds {
        if i > 0 {
            importer.remove()?;
        }
        let timing = importer.import_once()?;
        eprintln!(
            "  import {}: CLI {:.0} ms, revisions {:.0} ms, enforced {:.0} ms",
            i + 1,
            timing.cli_returned.as_secs_f64() * 1e3,
            timing.revisions.as_secs_f64() * 1e3,
            timing.enforced.as_secs_f64() * 1e3
        );
        results.imports.push(timing);
    }
    (results.rss_kib, results.hwm_kib) = procstat::memory_kib(agent_pid)?;
    eprintln!(
        "  agent VmRSS {:.1} MiB (VmHWM {:.1} MiB)",
        results.rss_kib as f64 / 1024.0,
        results.hwm_kib as f64 / 1024.0
    );

    for round in 0..args.rounds {
        step(
            started,
            &format!("datapath round {}/{}", round + 1, args.rounds),
        );
        topology.round(
            round,
            Duration::from_secs(args.seconds),
            &mut results.samples,
        )?;
        topology.round6(
            round,
            Duration::from_secs(args.seconds),
            &mut results.samples6,
        )?;
    }
    step(started, "profiling pass: (b) with kernel BPF statistics");
    results.prog_costs =
        topology.program_costs(agent, &client, &server, Duration::from_secs(args.seconds))?;
    let flow_packets = chain.flow_packets()?;
    if flow_packets == 0 {
        bail!("(c)'s traffic never reached the chain's final ACCEPTs: the baseline did not measure iptables");
    }
    drop(fillers);
    Ok(results)
}

/// Where each configuration's client and server are.
struct Topology<'a> {
    cilium: (&'a NetNs, Ipv4Addr),
    plain: (&'a NetNs, Ipv4Addr),
    cilium6: (&'a NetNs, Ipv6Addr),
    plain6: (&'a NetNs, Ipv6Addr),
    chain: &'a IptablesChain,
    agent_pid: u32,
}

impl Topology<'_> {
    fn endpoints(&self, config: Config) -> (&NetNs, Ipv4Addr) {
        match config {
            Config::Cilium => self.cilium,
            Config::Ceiling | Config::Iptables => self.plain,
        }
    }

    /// One TCP handshake per configuration before anything is measured.
    fn check_reachable(&self) -> Result<()> {
        for config in Config::ALL {
            let _engaged = match config {
                Config::Iptables => Some(self.chain.engage()?),
                _ => None,
            };
            let (client, server) = self.endpoints(config);
            if !measure::handshake(client, server, CONNECT_PORT, Duration::from_secs(2))? {
                bail!(
                    "{}: the client cannot reach {server}:{CONNECT_PORT}",
                    config.label()
                );
            }
        }
        for config in Config::IPV6 {
            let (client, server) = self.endpoints6(config);
            for port in [
                CONNECT6_PORT,
                ECHO6_PORT,
                testbed::bench::servers::IPERF_PORT,
            ] {
                if !measure::handshake(client, server, port, Duration::from_secs(2))? {
                    bail!(
                        "{} over IPv6: the client cannot reach [{server}]:{port}",
                        config.label()
                    );
                }
            }
        }
        Ok(())
    }

    fn endpoints6(&self, config: Config) -> (&NetNs, Ipv6Addr) {
        match config {
            Config::Cilium => self.cilium6,
            Config::Ceiling | Config::Iptables => self.plain6,
        }
    }

    /// [`Topology::round`] over IPv6, (a) and (b) only; the latency is our
    /// own ping-pong (sockperf 3.7 takes no IPv6 address).
    fn round6(&self, round: usize, duration: Duration, samples: &mut [Samples; 2]) -> Result<()> {
        let mut order = Config::IPV6;
        order.rotate_left(round % Config::IPV6.len());
        for (m, metric) in Metric::ALL.into_iter().enumerate() {
            for config in order {
                signals::check()?;
                let (client, server) = self.endpoints6(config);
                let server = IpAddr::V6(server);
                let s = &mut samples[config.index()];
                let agent_cpu = CpuMeter::start(self.agent_pid)?;
                let label = format!("{} IPv6", config.label());
                match metric {
                    Metric::Latency => {
                        let addr = SocketAddr::new(server, ECHO6_PORT);
                        let l = measure::ping_pong(client, addr, duration)?;
                        eprintln!(
                            "  {label:<29} RR p50 {:7.1} µs  p99 {:7.1} µs",
                            l.p50_us, l.p99_us
                        );
                        s.p50_us.push(l.p50_us);
                        s.p99_us.push(l.p99_us);
                    }
                    Metric::ConnRate => {
                        let addr = SocketAddr::new(server, CONNECT6_PORT);
                        let c = measure::conn_rate_to(client, addr, duration)?;
                        eprintln!(
                            "  {label:<29} {:8.0} conn/s ({} failed)",
                            c.per_second, c.failed
                        );
                        s.conn_per_s.push(c.per_second);
                        s.conn_failed += c.failed;
                    }
                    Metric::Throughput => {
                        let g = measure::throughput_gbps(client, server, duration)?;
                        eprintln!("  {label:<29} {g:8.2} Gbit/s");
                        s.gbps.push(g);
                    }
                }
                s.agent_cpu[m].push(agent_cpu.percent()?);
            }
        }
        Ok(())
    }

    /// Every metric once per configuration; the configurations alternate
    /// within each metric, their order rotated from round to round so none
    /// always runs first.
    fn round(&self, round: usize, duration: Duration, samples: &mut [Samples; 3]) -> Result<()> {
        let mut order = Config::ALL;
        order.rotate_left(round % Config::ALL.len());
        for (m, metric) in Metric::ALL.into_iter().enumerate() {
            for config in order {
                signals::check()?;
                let _engaged = match config {
                    Config::Iptables => Some(self.chain.engage()?),
                    _ => None,
                };
                let (client, server) = self.endpoints(config);
                let s = &mut samples[config.index()];
                let agent_cpu = CpuMeter::start(self.agent_pid)?;
                match metric {
                    Metric::Latency => {
                        let l = measure::latency(client, server, duration)?;
                        eprintln!(
                            "  {:<24} RR p50 {:7.1} µs  p99 {:7.1} µs",
                            config.label(),
                            l.p50_us,
                            l.p99_us
                        );
                        s.p50_us.push(l.p50_us);
                        s.p99_us.push(l.p99_us);
                    }
                    Metric::ConnRate => {
                        let c = measure::conn_rate(client, server, duration)?;
                        eprintln!(
                            "  {:<24} {:8.0} conn/s ({} failed)",
                            config.label(),
                            c.per_second,
                            c.failed
                        );
                        s.conn_per_s.push(c.per_second);
                        s.conn_failed += c.failed;
                    }
                    Metric::Throughput => {
                        let g = measure::throughput_gbps(client, server, duration)?;
                        eprintln!("  {:<24} {:8.2} Gbit/s", config.label(), g);
                        s.gbps.push(g);
                    }
                }
                s.agent_cpu[m].push(agent_cpu.percent()?);
            }
        }
        Ok(())
    }

    /// (b) again, with kernel BPF statistics on: the mean run time of the
    /// four programs the flow passes (both veths, both directions).
    fn program_costs(
        &self,
        agent: &Agent,
        client: &Pod,
        server: &Pod,
        duration: Duration,
    ) -> Result<Vec<ProgCost>> {
        let links = agent.paths().bpf_root.join("endpoints");
        let mut programs = Vec::new();
        for (pod, role) in [(client, "client"), (server, "server")] {
            for prog in ["cil_from_container", "cil_to_container"] {
                let pin = links.join(pod.endpoint_id().to_string()).join(prog);
                programs.push((format!("{role} {prog}"), profile::pinned_prog_id(&pin)?));
            }
        }
        // Kernel BPF statistics cost a little on every run: only for this pass.
        let _stats = SysctlOverride::set("kernel.bpf_stats_enabled", "1")?;
        let (client_ns, server_ip) = self.cilium;
        let server_ip6 = IpAddr::V6(self.cilium6.1);
        let mut costs = Vec::new();
        for ipv6 in [false, true] {
            for metric in [Metric::Latency, Metric::ConnRate] {
                signals::check()?;
                let span = profile::ProgSpan::start(&programs)?;
                match (metric, ipv6) {
                    (Metric::Latency, false) => {
                        measure::latency(client_ns, server_ip, duration)?;
                    }
                    (Metric::Latency, true) => {
                        let addr = SocketAddr::new(server_ip6, ECHO6_PORT);
                        measure::ping_pong(client_ns, addr, duration)?;
                    }
                    (_, false) => {
                        measure::conn_rate(client_ns, server_ip, duration)?;
                    }
                    (_, true) => {
                        let addr = SocketAddr::new(server_ip6, CONNECT6_PORT);
                        measure::conn_rate_to(client_ns, addr, duration)?;
                    }
                }
                for (program, ns_per_run, runs) in span.finish()? {
                    costs.push(ProgCost {
                        program,
                        metric,
                        ipv6,
                        ns_per_run,
                        runs,
                    });
                }
            }
        }
        Ok(costs)
    }
}
