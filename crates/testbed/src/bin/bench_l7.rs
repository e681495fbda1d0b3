//! `cilium-bench-l7`: requests per second and latency of HTTP through the L7
//! policy proxy, side by side with (a) the same traffic under an L3/L4 policy
//! only and (c) nginx as a plain reverse proxy, in one run with interleaved
//! rounds (issue 6; see bench/README.md and the method section of the page it
//! writes).
//!
//! Everything it creates (agent and its proxy, pods, nginx processes, the
//! temp directory) is released by Drop guards, also on Ctrl-C and on failure;
//! bench/l7/run.sh sweeps up after a SIGKILL.

#[path = "bench_l7/cpu.rs"]
mod cpu;
#[path = "bench_l7/load.rs"]
mod load;
#[path = "bench_l7/nginx.rs"]
mod nginx;
#[path = "bench_l7/paths.rs"]
mod paths;
#[path = "bench_l7/report.rs"]
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use testbed::bench::entry::{self, step};
use testbed::bench::{
    agent_under_test, machine, policy_import, process_table, procstat, signals, Flags, Machine,
    SysctlOverride,
};
use testbed::{Agent, Pod};

use load::{LoadResult, Shape};
use nginx::{Nginx, Role};
use report::{Protocol, Report, Sample, Series, Setup};

/// Autogroup scheduling, off for the run (see `run`).
const AUTOGROUP_SYSCTL: &str = "kernel.sched_autogroup_enabled";

/// The agent's pod range, away from the other benches' and the tests'.
const AGENT_RANGE: &str = "10.194.0.0/24";
const REALIZE_TIMEOUT: Duration = Duration::from_secs(15);

/// Origin ports: the L7 rule covers 80 and 81, the others are L3/L4 only.
const ORIGIN_L7_HTTP1: u16 = 80;
const ORIGIN_L7_H2C: u16 = 81;
const ORIGIN_L4_HTTP1: u16 = 8080;
const ORIGIN_L4_H2C: u16 = 8082;
/// The reverse proxy's listeners.
const RPROXY_HTTP1: u16 = 8081;
const RPROXY_H2C: u16 = 8083;

const POLICY: &str = "\
- endpointSelector:
    matchLabels: {app: bench-l7-origin}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: bench-l7-client}
    toPorts:
    - ports: [{port: \"80\", protocol: TCP}, {port: \"81\", protocol: TCP}]
      rules:
        http:
        - method: GET
          path: \"/.*\"
  - fromEndpoints:
    - matchLabels: {app: bench-l7-client}
    - matchLabels: {app: bench-l7-rproxy}
    toPorts:
    - ports: [{port: \"8080\", protocol: TCP}, {port: \"8082\", protocol: TCP}]
- endpointSelector:
    matchLabels: {app: bench-l7-rproxy}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: bench-l7-client}
    toPorts:
    - ports: [{port: \"8081\", protocol: TCP}, {port: \"8083\", protocol: TCP}]
";

struct Args {
    rounds: usize,
    seconds: u32,
    threads: u32,
    connections: u32,
    h2_rounds: usize,
    h2_seconds: u32,
    h2_connections: u32,
    h2_streams: u32,
    output: Option<PathBuf>,
}

const USAGE: &str = "\
cilium-bench-l7 [FLAGS]   (root; normally run by bench/l7/run.sh)

  --rounds N           interleaved HTTP/1.1 rounds (5)
  --seconds S          seconds per wrk run (4)
  --threads N          wrk and h2load threads (1)
  --connections N      wrk connections (16)
  --h2-rounds N        interleaved HTTP/2 rounds, 0 = none (5)
  --h2-seconds S       seconds per h2load run (3)
  --h2-connections N   h2load clients (16)
  --h2-streams N       h2load concurrent streams per client (10)
  --output FILE.md     also write the results page there
";

impl Args {
    fn parse(argv: impl Iterator<Item = String>) -> Result<Args> {
        let mut args = Args {
            rounds: 5,
            seconds: 4,
            threads: 1,
            connections: 16,
            h2_rounds: 5,
            h2_seconds: 3,
            h2_connections: 16,
            h2_streams: 10,
            output: None,
        };
        let mut flags = Flags::new(argv, USAGE);
        while let Some(flag) = flags.next_flag()? {
            match flag.name.as_str() {
                "--rounds" => args.rounds = flag.number()?,
                "--seconds" => args.seconds = flag.number()?,
                "--threads" => args.threads = flag.number()?,
                "--connections" => args.connections = flag.number()?,
                "--h2-rounds" => args.h2_rounds = flag.number()?,
                "--h2-seconds" => args.h2_seconds = flag.number()?,
                "--h2-connections" => args.h2_connections = flag.number()?,
                "--h2-streams" => args.h2_streams = flag.number()?,
                "--output" => args.output = Some(flag.path()),
                _ => return Err(flag.unknown()),
            }
        }
        ensure!(
            args.rounds > 0 && args.seconds > 0 && args.threads > 0 && args.connections > 0,
            "--rounds, --seconds, --threads and --connections must be positive"
        );
        ensure!(
            args.h2_rounds == 0
                || (args.h2_seconds > 0 && args.h2_connections > 0 && args.h2_streams > 0),
            "--h2-seconds, --h2-connections and --h2-streams must be positive"
        );
        Ok(args)
    }

    fn http1(&self) -> Shape {
        Shape {
            threads: self.threads,
            connections: self.connections,
            streams: 1,
            seconds: self.seconds,
        }
    }

    fn http2(&self) -> Shape {
        Shape {
            threads: self.threads,
            connections: self.h2_connections,
            streams: self.h2_streams,
            seconds: self.h2_seconds,
        }
    }
}

fn main() -> ExitCode {
    entry::main(Args::parse, run)
}

/// The run's scratch directory (nginx prefixes, h2load's log).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let mut machine = Machine::probe().facts(&[
        machine::tool_version("wrk", &["--version"]),
        machine::tool_version("h2load", &["--version"]),
        machine::tool_version("nginx", &["-v"]),
    ]);
    let temp =
        TempDir(std::env::temp_dir().join(format!("cilium-bench-l7-{}", std::process::id())));
    std::fs::create_dir_all(&temp.0)
        .with_context(|| format!("cannot create {}", temp.0.display()))?;

    // With autogroup scheduling every session is one scheduling group, and
    // cilium-proxy has a session of its own (setsid, so that it outlives the
    // agent) while nginx, the client and the origin share the bench's. On a
    // machine busy with other sessions, every hop into cilium-proxy then
    // waits for its group's turn against theirs, and no hop of (a) or (c)
    // does. Off, every thread is scheduled as itself in all three setups.
    let autogroup_off = Path::new("/proc/sys/kernel/sched_autogroup_enabled")
        .exists()
        .then(|| SysctlOverride::set(AUTOGROUP_SYSCTL, "0"))
        .transpose()?;
    let agent = agent_under_test::start(started, AGENT_RANGE)?;
    let (http1, http2, checks, tracked) =
        agent_under_test::with_log_tail(&agent, bench(args, &agent, &temp.0, started))?;
    machine.push(("load average at end".into(), machine::load_average()));
    let mut notes = vec![
        "The machine is shared: other sessions build and test on the same 2 cores while the \
         bench runs, and client, proxies, origin and agent compete for them too. Compare \
         setups within one run (interleaved rounds), not absolute numbers across runs."
            .to_string(),
    ];
    if autogroup_off.is_some() {
        notes.push(format!(
            "`{AUTOGROUP_SYSCTL}` was 0 during the run (restored after): cilium-proxy runs in \
             a session of its own and nginx in the bench's, so autogroup scheduling would \
             make only (b) cross between scheduling groups."
        ));
    }
    let report = Report {
        machine,
        tracked,
        http1,
        http2,
        checks,
        notes,
        total: started.elapsed(),
    };
    entry::publish(&report::render(&report), args.output.as_deref())?;
    step(started, "cleaning up (nginx, pods, agent)");
    Ok(())
}

type Outcome = (Series, Option<Series>, Vec<String>, Vec<&'static str>);

fn bench(args: &Args, agent: &Agent, temp: &Path, started: Instant) -> Result<Outcome> {
    step(started, "creating pods: origin, client, rproxy");
    let origin = Pod::create(agent, "bench-l7-origin", &["k8s:app=bench-l7-origin"])?;
    let client = Pod::create(agent, "bench-l7-client", &["k8s:app=bench-l7-client"])?;
    let rproxy = Pod::create(agent, "bench-l7-rproxy", &["k8s:app=bench-l7-rproxy"])?;
    signals::check()?;

    step(started, "importing the policy");
    let revision = policy_import::import_text(agent, "bench-l7-policy.yaml", POLICY)?;
    origin.wait_for_policy_revision(agent, revision, REALIZE_TIMEOUT)?;
    rproxy.wait_for_policy_revision(agent, revision, REALIZE_TIMEOUT)?;
    signals::check()?;

    step(started, "starting nginx: origin and reverse proxy");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let origin_nginx = Nginx::start(
        origin.namespace(),
        "origin",
        &Role::Origin {
            http1_ports: vec![ORIGIN_L7_HTTP1, ORIGIN_L4_HTTP1],
            h2c_ports: vec![ORIGIN_L7_H2C, ORIGIN_L4_H2C],
        },
        &temp.join("origin"),
        workers,
    )?;
    let rproxy_nginx = Nginx::start(
        rproxy.namespace(),
        "reverse proxy",
        &Role::ReverseProxy {
            http1_port: RPROXY_HTTP1,
            h2c_port: RPROXY_H2C,
            upstream: SocketAddr::from((origin.ip(), ORIGIN_L4_HTTP1)),
        },
        &temp.join("rproxy"),
        workers,
    )?;
    signals::check()?;

    step(
        started,
        "checking every path (and that the proxy judges port 80)",
    );
    let urls = paths::Urls::new(origin.ip(), rproxy.ip());
    let checks = paths::check_paths(&client, &urls, args.h2_rounds > 0)?;

    let proxy_pids = process_table::pids_with_arg(&agent.proxy_socket(), Some("cilium-proxy"));
    ensure!(
        !proxy_pids.is_empty(),
        "no cilium-proxy process with {} on its command line",
        agent.proxy_socket().display()
    );
    let agent_pid = process_table::agent_pid(agent.socket())?;
    let tracked = vec![
        cpu::Tracked {
            name: "cilium-proxy",
            pids: proxy_pids,
        },
        cpu::Tracked {
            name: "nginx reverse proxy",
            pids: rproxy_nginx.pids(),
        },
        cpu::Tracked {
            name: "nginx origin",
            pids: origin_nginx.pids(),
        },
        cpu::Tracked {
            name: "cilium-agent",
            pids: vec![agent_pid],
        },
    ];
    let mut names: Vec<&'static str> = tracked.iter().map(|t| t.name).collect();
    names.push("client");

    let h1_shape = args.http1();
    let http1 = rounds(
        started,
        Protocol::Http1,
        h1_shape,
        args.rounds,
        &tracked,
        |setup, shape| load::wrk(client.namespace(), urls.get(Protocol::Http1, setup), shape),
    )?;
    let http2 = if args.h2_rounds > 0 {
        let log = temp.join("h2load.log");
        Some(rounds(
            started,
            Protocol::Http2,
            args.http2(),
            args.h2_rounds,
            &tracked,
            |setup, shape| {
                load::h2load(
                    client.namespace(),
                    urls.get(Protocol::Http2, setup),
                    shape,
                    &log,
                )
            },
        )?)
    } else {
        None
    };
    Ok((http1, http2, checks, names))
}

/// Warm-up (1 s per setup, which must see only 2xx), then `count` rounds
/// of every setup, the order rotating from round to round.
fn rounds(
    started: Instant,
    protocol: Protocol,
    shape: Shape,
    count: usize,
    tracked: &[cpu::Tracked],
    measure: impl Fn(Setup, Shape) -> Result<LoadResult>,
) -> Result<Series> {
    step(started, &format!("{}: warm-up", protocol.title()));
    for setup in Setup::ALL {
        signals::check()?;
        let warm = measure(
            setup,
            Shape {
                seconds: 1,
                ..shape
            },
        )?;
        ensure!(
            warm.requests > 0 && warm.bad == 0,
            "{} {}: warm-up got {} good and {} bad responses",
            protocol.title(),
            setup.label(),
            warm.requests,
            warm.bad
        );
    }
    let mut samples = Vec::new();
    for round in 0..count {
        step(
            started,
            &format!("{}: round {}/{count}", protocol.title(), round + 1),
        );
        let mut order = Setup::ALL.to_vec();
        order.rotate_left(round % Setup::ALL.len());
        for setup in order {
            signals::check()?;
            let cpu_before = cpu::snapshot(tracked);
            let client_before = procstat::reaped_children_cpu_seconds();
            let t = Instant::now();
            let load = measure(setup, shape)?;
            let wall = t.elapsed();
            let mut cpu_seconds: Vec<f64> = cpu::snapshot(tracked)
                .iter()
                .zip(&cpu_before)
                .map(|(after, before)| after - before)
                .collect();
            cpu_seconds.push(procstat::reaped_children_cpu_seconds() - client_before);
            eprintln!(
                "    {:<40} {:>8.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs",
                setup.label(),
                load.requests_per_second,
                load.p50_us,
                load.p99_us
            );
            samples.push(Sample {
                setup,
                round,
                load,
                wall,
                cpu_seconds,
            });
        }
    }
    Ok(Series {
        protocol,
        shape,
        rounds: count,
        samples,
    })
}
