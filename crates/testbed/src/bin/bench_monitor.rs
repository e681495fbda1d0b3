//! `cilium-bench-monitor`: the monitor under a flood of drop events (issue
//! 8). An attacker pod floods a pod whose policy denies it, so every
//! datagram becomes a drop event, while an allowed iperf3 flow between two
//! other pods measures the datapath. Interleaved rounds compare no flood,
//! the flood without a monitor client, with a fast `cilium monitor` and
//! with a slow one; the page reports events delivered and lost, the allowed
//! flow's throughput and where the CPU went (see bench/README.md).
//!
//! Everything it creates (agent, pods, iperf3 server, monitor clients, the
//! flood thread) is released by Drop guards, also on Ctrl-C and on failure;
//! bench/monitor/run.sh sweeps up after a SIGKILL.

#[path = "bench_monitor/args.rs"]
mod args;
#[path = "bench_monitor/client.rs"]
mod client;
#[path = "bench_monitor/flood.rs"]
mod flood;
#[path = "bench_monitor/iperf.rs"]
mod iperf;
#[path = "bench_monitor/probe.rs"]
mod probe;
#[path = "bench_monitor/report.rs"]
mod report;
#[path = "bench_monitor/sample.rs"]
mod sample;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use testbed::bench::entry::{self, step};
use testbed::bench::measure::throughput_gbps;
use testbed::bench::{
    agent_under_test, machine, policy_import, process_table, procstat, signals, Machine,
};
use testbed::{Agent, Pod};

use args::Args;
use client::{MonitorClient, Pace};
use flood::Flood;
use probe::AgentCounters;
use report::{Check, Report};
use sample::{Config, Sample, Settled};

/// The agent's pod range, away from the other benches' and the tests'.
const AGENT_RANGE: &str = "10.190.0.0/24";
const REALIZE_TIMEOUT: Duration = Duration::from_secs(15);
/// The victim's UDP port: its policy allows only the client there.
const FLOOD_PORT: u16 = 9;
/// After the flood and the client start, before the window opens: the
/// ring's backlog is drained and the client's stream is in its steady state.
const SETTLE: Duration = Duration::from_millis(500);
const FIRST_LINE_TIMEOUT: Duration = Duration::from_secs(5);
/// A client has caught up when its counts stay still this long.
const SETTLE_QUIET: Duration = Duration::from_millis(300);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

const POLICY: &str = "\
- endpointSelector:
    matchLabels: {app: bench-monitor-server}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: bench-monitor-client}
    toPorts:
    - ports: [{port: \"5201\", protocol: TCP}]
- endpointSelector:
    matchLabels: {app: bench-monitor-victim}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: bench-monitor-client}
    toPorts:
    - ports: [{port: \"9\", protocol: UDP}]
";

fn main() -> ExitCode {
    entry::main(Args::parse, run)
}

fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let mut machine = Machine::probe().facts(&[machine::tool_version("iperf3", &["--version"])]);
    let agent = agent_under_test::start(started, AGENT_RANGE)?;
    let (check, samples) = agent_under_test::with_log_tail(&agent, bench(args, &agent, started))?;
    machine.push(("load average at end".into(), machine::load_average()));
    let report = Report {
        machine,
        method: args.method(),
        check,
        rounds: args.rounds,
        samples,
        notes: vec![
            "The machine is shared: other sessions build and test on the same 2 cores while the \
             bench runs, and the flood thread, iperf3 client and server, the agent and the \
             monitor client compete for them too. Compare configurations within one run \
             (interleaved rounds), not absolute numbers across runs."
                .into(),
            "\"Neither delivered nor reported\" is measured for the fast client (2) only. After \
             its window the flood stops and the client catches up; twice the datapath's drops \
             since the window opened, minus the events the client received and the losses \
             reported to it, is what was lost before the agent's fan-out: events the programs \
             could not write because the ring was full, which nothing counts. The slow client \
             (3) allows no such account: the agent keeps 4,096 events per client, so a slow \
             client learns of a loss only after working through that backlog (MBs of JSON, \
             many seconds at its pace). Its lost reports, and the agent's lost counter, arrive \
             in lumps that one window may miss or catch twice."
                .into(),
        ],
        total: started.elapsed(),
    };
    entry::publish(&report::render(&report), args.output.as_deref())?;
    step(started, "cleaning up (pods, agent)");
    Ok(())
}

/// The four pods of the bench.
struct Pods {
    attacker: Pod,
    victim: Pod,
    client: Pod,
    server: Pod,
}

impl Pods {
    fn flood_target(&self) -> SocketAddr {
        SocketAddr::from((self.victim.ip(), FLOOD_PORT))
    }
}

fn bench(args: &Args, agent: &Agent, started: Instant) -> Result<(Check, Vec<Sample>)> {
    step(started, "creating pods: attacker, victim, client, server");
    let pods = Pods {
        attacker: Pod::create(
            agent,
            "bench-mon-attacker",
            &["k8s:app=bench-monitor-attacker"],
        )?,
        victim: Pod::create(agent, "bench-mon-victim", &["k8s:app=bench-monitor-victim"])?,
        client: Pod::create(agent, "bench-mon-client", &["k8s:app=bench-monitor-client"])?,
        server: Pod::create(agent, "bench-mon-server", &["k8s:app=bench-monitor-server"])?,
    };
    signals::check()?;

    step(started, "importing the policy");
    let revision = policy_import::import_text(agent, "bench-monitor-policy.yaml", POLICY)?;
    pods.victim
        .wait_for_policy_revision(agent, revision, REALIZE_TIMEOUT)?;
    pods.server
        .wait_for_policy_revision(agent, revision, REALIZE_TIMEOUT)?;
    signals::check()?;

    step(started, "starting iperf3 -s in the server pod");
    let _iperf = iperf::IperfServer::start(
        pods.server.namespace(),
        &agent.temp_dir().join("iperf3-server.log"),
    )?;
    let agent_pid = process_table::agent_pid(agent.socket())?;
    step(started, "warm-up: iperf3 for 1 s, no flood");
    throughput_gbps(
        pods.client.namespace(),
        pods.server.ip(),
        Duration::from_secs(1),
    )?;
    signals::check()?;

    step(started, "accounting check at a moderate rate");
    let check = accounting_check(args, agent, &pods)?;
    eprintln!(
        "    {} datagrams: {} datapath drops, client got {} drop + {} verdict events, {} lost",
        check.packets,
        check.datapath_drops,
        check.client.drops,
        check.client.verdicts,
        check.client.lost
    );

    let mut samples = Vec::new();
    for round in 0..args.rounds {
        step(started, &format!("round {}/{}", round + 1, args.rounds));
        let mut order = Config::ALL.to_vec();
        order.rotate_left(round % Config::ALL.len());
        for config in order {
            signals::check()?;
            let sample = measure(args, agent, agent_pid, &pods, config, round)?;
            eprintln!(
                "    {:<42} sent {:>7.0}/s  drops {:>7.0}/s  delivered {:>7}/s  lost {:>7}/s  {:>5.2} Gbit/s  agent {:>3.0} %",
                config.label(),
                sample.sent_per_s(),
                sample.drops_per_s(),
                sample
                    .client
                    .map_or("—".into(), |c| format!("{:.0}", c.events() as f64 / sample.window.as_secs_f64())),
                sample
                    .client
                    .map_or("—".into(), |c| format!("{:.0}", c.lost as f64 / sample.window.as_secs_f64())),
                sample.gbps,
                100.0 * sample.agent_cpu / sample.window.as_secs_f64()
            );
            samples.push(sample);
        }
    }
    Ok((check, samples))
}

/// A counted burst at a rate the agent keeps up with: the datapath's drop
/// counter, the drop events and the policy verdicts must all match the
/// datagrams sent. Proves the policy denies the attacker and that the
/// client's counts mean what the page says.
fn accounting_check(args: &Args, agent: &Agent, pods: &Pods) -> Result<Check> {
    let mut client = MonitorClient::start(agent, Pace::Fast)?;
    // With `-o json` the CLI prints no banner: the stream is open once the
    // first event arrives, so trickle datagrams until one does.
    {
        let trickle = Flood::start(
            pods.attacker.namespace(),
            pods.flood_target(),
            flood::Shape {
                per_second: Some(50),
                count: None,
            },
        )?;
        client.wait_for_lines(1, FIRST_LINE_TIMEOUT)?;
        drop(trickle);
    }
    let quiet = Duration::from_millis(300);
    let before = client.settle(quiet, Duration::from_secs(3));
    let kernel_before = AgentCounters::read(agent)?;
    let burst = Flood::start(
        pods.attacker.namespace(),
        pods.flood_target(),
        flood::Shape {
            per_second: Some(args.check_pps),
            count: Some(args.check_packets),
        },
    )?;
    let budget = Duration::from_secs_f64(args.check_packets as f64 / args.check_pps as f64 + 5.0);
    ensure!(
        burst.wait_done(budget),
        "the check's burst did not finish within {budget:?}"
    );
    let after = client.settle(quiet, Duration::from_secs(5));
    let kernel_after = AgentCounters::read(agent)?;
    let datapath_drops = kernel_after.datapath_drops - kernel_before.datapath_drops;
    ensure!(
        datapath_drops >= args.check_packets,
        "the datapath dropped {datapath_drops} of {} datagrams to the victim: its policy does \
         not deny the attacker",
        args.check_packets
    );
    Ok(Check {
        packets: args.check_packets,
        per_second: args.check_pps,
        datapath_drops,
        client: after.minus(before),
    })
}

/// One configuration for one round: flood and client started, settled,
/// then counters around one iperf3 run.
fn measure(
    args: &Args,
    agent: &Agent,
    agent_pid: u32,
    pods: &Pods,
    config: Config,
    round: usize,
) -> Result<Sample> {
    let flood = if config.floods() {
        Some(Flood::start(
            pods.attacker.namespace(),
            pods.flood_target(),
            flood::Shape {
                per_second: args.flood_pps,
                count: None,
            },
        )?)
    } else {
        None
    };
    let pace = match config {
        Config::FastClient => Some(Pace::Fast),
        Config::SlowClient => Some(args.slow_pace()),
        Config::NoFlood | Config::Flood => None,
    };
    let mut client = pace.map(|p| MonitorClient::start(agent, p)).transpose()?;
    if let Some(client) = client.as_mut() {
        client.wait_for_lines(1, FIRST_LINE_TIMEOUT)?;
    }
    std::thread::sleep(SETTLE);
    signals::check()?;

    let scrape_before = AgentCounters::read(agent)?;
    let snap_before = Snapshot::take(agent_pid, flood.as_ref(), client.as_ref());
    let gbps = throughput_gbps(
        pods.client.namespace(),
        pods.server.ip(),
        Duration::from_secs(args.seconds.into()),
    )?;
    let snap_after = Snapshot::take(agent_pid, flood.as_ref(), client.as_ref());
    let scrape_after = AgentCounters::read(agent)?;
    let sent_errors = flood.as_ref().map_or(0, Flood::errors);
    drop(flood);
    // The fast client catches up once the flood stops: then every event
    // the window produced has either arrived or been reported lost.
    let settled = match (&client, config) {
        (Some(client), Config::FastClient) => {
            let counts = client.settle(SETTLE_QUIET, SETTLE_TIMEOUT);
            let drops = AgentCounters::read(agent)?.datapath_drops;
            let before = snap_before.client.unwrap_or_default();
            Some(Settled {
                produced: 2 * (drops - scrape_before.datapath_drops),
                arrived: counts.minus(before).events(),
                reported_lost: counts.minus(before).lost,
            })
        }
        _ => None,
    };
    drop(client);

    let (busy, total) = (
        snap_after.machine.0 - snap_before.machine.0,
        snap_after.machine.1 - snap_before.machine.1,
    );
    Ok(Sample {
        config,
        round,
        window: snap_after.at - snap_before.at,
        scrape_window: scrape_after.at - scrape_before.at,
        sent: snap_after.sent - snap_before.sent,
        send_errors: sent_errors,
        datapath_drops: scrape_after.datapath_drops - scrape_before.datapath_drops,
        agent_lost: scrape_after.monitor_lost - scrape_before.monitor_lost,
        settled,
        client: match (snap_after.client, snap_before.client) {
            (Some(after), Some(before)) => Some(after.minus(before)),
            _ => None,
        },
        gbps,
        agent_cpu: snap_after.agent_cpu - snap_before.agent_cpu,
        client_cpu: snap_after.client_cpu - snap_before.client_cpu,
        reader_cpu: snap_after.reader_cpu - snap_before.reader_cpu,
        flood_cpu: snap_after.flood_cpu - snap_before.flood_cpu,
        machine_busy: busy as f64 / total.max(1) as f64,
    })
}

/// Everything read from this side at one edge of the window.
struct Snapshot {
    at: Instant,
    sent: u64,
    client: Option<client::Counts>,
    agent_cpu: f64,
    client_cpu: f64,
    reader_cpu: f64,
    flood_cpu: f64,
    machine: (u64, u64),
}

impl Snapshot {
    fn take(agent_pid: u32, flood: Option<&Flood>, client: Option<&MonitorClient>) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            sent: flood.map_or(0, Flood::sent),
            client: client.map(MonitorClient::counts),
            agent_cpu: cpu_seconds(agent_pid),
            client_cpu: client.map_or(0.0, |c| cpu_seconds(c.pid())),
            reader_cpu: client.map_or(0.0, MonitorClient::reader_cpu_seconds),
            flood_cpu: flood.map_or(0.0, Flood::cpu_seconds),
            machine: procstat::machine_ticks(),
        }
    }
}

/// CPU seconds of a process; 0 once it is gone.
fn cpu_seconds(pid: u32) -> f64 {
    procstat::process_cpu_seconds(pid).unwrap_or(0.0)
}
