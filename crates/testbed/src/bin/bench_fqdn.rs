//! `cilium-bench-fqdn`: DNS-aware policy (issue 17). One node, a client
//! pod, and dnsmasq on a host outside the cluster answering on two
//! addresses: queries to one go through the DNS proxy (`rules.dns`, every
//! name allowed, `toFQDNs` learning the answers), queries to the other are
//! allowed at L3/L4 only. Both setups interleave in one run:
//!
//! - dnsperf from the pod: queries/s and p50/p99 latency for names already
//!   learned (steady state), for names each asked for the first time, and
//!   (a diagnostic) for AAAA queries whose answers carry no address, which
//!   the proxy forwards without waiting for the agent;
//! - name → allowed: for names new to the agent, the time the proxy adds
//!   to an answer (it holds every answer until the datapath allows its
//!   addresses), with a TCP connection to each address right after.
//!
//! Everything it creates (agent and proxy, node and pod namespaces, the
//! outside host and its dnsmasq) is released by Drop guards, also on
//! Ctrl-C and on failure; bench/fqdn/run.sh sweeps up after a SIGKILL.

#[path = "bench_fqdn/dnsperf.rs"]
mod dnsperf;
#[path = "bench_fqdn/names.rs"]
mod names;
#[path = "bench_fqdn/probe.rs"]
mod probe;
#[path = "bench_fqdn/report.rs"]
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use testbed::bench::entry::{self, step};
use testbed::bench::{
    agent_under_test, machine, process_table, procstat, signals, Flags, Machine, SysctlOverride,
};
use testbed::cluster::{Cluster, ClusterOptions, ClusterPod, DnsServer, DnsServerConfig};
use testbed::{eventually, TcpServer};

use names::{Group, NamePlan, CHECK_NAME, DIRECT_SERVER, PROXIED_SERVER, SERVED, TCP_PORT};
use report::{Report, Sample, Setup, Workload};

/// Autogroup scheduling, off for the run (as in the L7 bench: cilium-proxy
/// runs in a session of its own, so only the proxied setup would cross
/// between scheduling groups).
const AUTOGROUP_SYSCTL: &str = "kernel.sched_autogroup_enabled";
const CLIENT_LABEL: &str = "bench-fqdn-client";
/// Answers live longer than the run: nothing expires while measuring.
const TTL: u32 = 3600;
/// The agent's `--tofqdns-proxy-response-max-delay` (its default): an
/// answer held this long is released without the agent's go-ahead.
pub const MAX_DELAY_US: f64 = 1e6;

const USAGE: &str = "\
cilium-bench-fqdn [FLAGS]   (root; normally run by bench/fqdn/run.sh)

  --rounds N         interleaved rounds (5)
  --seconds S        seconds per dnsperf run (5)
  --clients N        dnsperf clients, -c (4)
  --outstanding N    dnsperf queries in flight, -q (100)
  --names N          names learned before the steady-state runs (1000)
  --fresh N          names new to the agent per round (5000)
  --probes N         name -> allowed probes (500)
  --output FILE.md   also write the results page there
";

pub struct Args {
    pub rounds: usize,
    pub shape: dnsperf::Shape,
    pub plan: NamePlan,
    output: Option<PathBuf>,
}

impl Args {
    fn parse(argv: impl Iterator<Item = String>) -> Result<Args> {
        let mut args = Args {
            rounds: 5,
            shape: dnsperf::Shape {
                clients: 4,
                outstanding: 100,
                seconds: 5,
            },
            plan: NamePlan {
                steady: 1000,
                fresh_per_round: 5000,
                rounds: 5,
                probes: 500,
            },
            output: None,
        };
        let mut flags = Flags::new(argv, USAGE);
        while let Some(flag) = flags.next_flag()? {
            match flag.name.as_str() {
                "--rounds" => args.rounds = flag.number()?,
                "--seconds" => args.shape.seconds = flag.number()?,
                "--clients" => args.shape.clients = flag.number()?,
                "--outstanding" => args.shape.outstanding = flag.number()?,
                "--names" => args.plan.steady = flag.number()?,
                "--fresh" => args.plan.fresh_per_round = flag.number()?,
                "--probes" => args.plan.probes = flag.number()?,
                "--output" => args.output = Some(flag.path()),
                _ => return Err(flag.unknown()),
            }
        }
        args.plan.rounds = args.rounds;
        let s = args.shape;
        ensure!(
            args.rounds > 0 && s.seconds > 0 && s.clients > 0 && s.outstanding > 0,
            "--rounds, --seconds, --clients and --outstanding must be positive"
        );
        ensure!(
            args.plan.steady > 0 && args.plan.fresh_per_round > 0,
            "--names and --fresh must be positive"
        );
        ensure!(
            args.plan.fits(),
            "too many names: each needs an address of its own in {SERVED}"
        );
        Ok(args)
    }
}

fn main() -> ExitCode {
    entry::main(Args::parse, run)
}

fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let machine = Machine::probe();
    let tools = vec![
        machine::tool_version("dpkg-query", &["-W", "-f=dnsperf ${Version}", "dnsperf"]),
        machine::tool_version("dnsmasq", &["--version"]),
    ];
    let autogroup_off = Path::new("/proc/sys/kernel/sched_autogroup_enabled")
        .exists()
        .then(|| SysctlOverride::set(AUTOGROUP_SYSCTL, "0"))
        .transpose()?;
    step(started, "starting a one-node cluster (cilium-agent)");
    // Every learned address gets an identity and an entry in the pod's
    // policy map: room for all of them.
    let plan = args.plan;
    let map_max = (2 * (plan.steady + plan.probes + plan.fresh_per_round)).max(16_384);
    let cluster = Cluster::start_with_agent_args(
        ClusterOptions {
            nodes: 1,
            etcd_members: 0,
        },
        &["--bpf-policy-map-max", &map_max.to_string()],
    )?;
    let agent = cluster.node(0).agent();
    let outcome = agent_under_test::with_log_tail(agent, bench(args, &cluster, started))?;
    let mut facts = machine.facts(&tools);
    facts.push(("load average at end".into(), machine::load_average()));
    let report = Report {
        facts,
        args,
        autogroup_off: autogroup_off.is_some(),
        outcome,
        total: started.elapsed(),
    };
    entry::publish(&report::render(&report), args.output.as_deref())?;
    step(started, "cleaning up (dnsmasq, pod, agent, namespaces)");
    Ok(())
}

/// What the measurements found.
pub struct Outcome {
    pub checks: Vec<String>,
    pub samples: Vec<Sample>,
    pub probes: Vec<probe::Probe>,
    /// Tracked processes' names, in the order of `Sample::cpu_seconds`.
    pub tracked: Vec<&'static str>,
}

fn bench(args: &Args, cluster: &Cluster, started: Instant) -> Result<Outcome> {
    let node = cluster.node(0);
    let dir = node.agent().temp_dir().to_path_buf();
    let plan = args.plan;

    step(
        started,
        "outside host: dnsmasq on two addresses, names' range",
    );
    let host = cluster.outside_host("dns")?;
    cluster.route_to_outside(&host, SERVED)?;
    for server in [PROXIED_SERVER, DIRECT_SERVER] {
        host.namespace()
            .exec_ok(&["ip", "addr", "add", &format!("{server}/32"), "dev", "lo"])?;
    }
    let dns = DnsServer::start(
        &host,
        &dir,
        &DnsServerConfig {
            hosts: plan.hosts(),
            ttl: TTL,
            listen: vec![PROXIED_SERVER, DIRECT_SERVER],
            ..Default::default()
        },
    )?;
    let _tcp = TcpServer::start(host.namespace(), TCP_PORT, "outside\n".into())?;
    signals::check()?;

    step(started, "client pod and policy");
    let pod = cluster.pod(
        0,
        "bench-fqdn-client",
        &[&format!("k8s:app={CLIENT_LABEL}")],
    )?;
    cluster.import_policy(&names::policy(CLIENT_LABEL))?;
    let checks = check_paths(cluster, &pod, &plan)?;
    signals::check()?;

    let files = QueryFiles::write(&dir, &plan)?;
    step(
        started,
        &format!("learning {} names through the proxy", plan.steady),
    );
    let warm = dnsperf::Shape {
        seconds: 60,
        ..args.shape
    };
    let learned = dnsperf::run(pod.namespace(), PROXIED_SERVER, &files.steady, warm, true)?;
    ensure!(
        learned.noerror as usize == plan.steady,
        "learning the steady names: {} of {} answered NOERROR",
        learned.noerror,
        plan.steady
    );
    let cached = node.client().fqdn_cache_list(Some("*.steady.test"))?.len();
    ensure!(
        cached == plan.steady,
        "the agent's cache holds {cached} of the {} steady names",
        plan.steady
    );

    let agent_pid = process_table::agent_pid(node.agent().socket())?;
    let proxy_pids =
        process_table::pids_with_arg(&node.agent().proxy_socket(), Some("cilium-proxy"));
    ensure!(!proxy_pids.is_empty(), "no cilium-proxy process found");
    let tracked = [
        ("cilium-proxy", proxy_pids),
        ("cilium-agent", vec![agent_pid]),
        ("dnsmasq", vec![dns.pid()]),
    ];

    let mut samples = Vec::new();
    for round in 0..args.rounds {
        let mut order = Setup::ALL.to_vec();
        order.rotate_left(round % Setup::ALL.len());
        for workload in Workload::ALL {
            step(
                started,
                &format!("round {}/{}: {}", round + 1, args.rounds, workload.title()),
            );
            for &setup in &order {
                signals::check()?;
                let (file, once) = match (workload, setup) {
                    (Workload::Steady, _) => (&files.steady, false),
                    (Workload::NoAddress, _) => (&files.no_address, false),
                    // Direct learns nothing: it may ask the names again.
                    (Workload::Fresh, Setup::Direct) => (&files.fresh[round], false),
                    (Workload::Fresh, Setup::Proxy) => (&files.fresh[round], true),
                };
                let sample = measure(&pod, setup, workload, round, file, once, args, &tracked)?;
                if workload == Workload::Fresh && setup == Setup::Proxy {
                    // The next round starts from the same cache size.
                    node.client()
                        .fqdn_cache_clean(Some(Group::FRESH_PATTERN))
                        .context("cilium fqdn cache clean -p *.fresh.test")?;
                }
                samples.push(sample);
            }
        }
    }

    step(
        started,
        &format!("name -> allowed: {} new names", plan.probes),
    );
    let probes = probe::run(pod.namespace(), &plan)?;
    Ok(Outcome {
        checks,
        samples,
        probes,
        tracked: tracked.iter().map(|(name, _)| *name).collect(),
    })
}

/// The dnsperf query files.
struct QueryFiles {
    steady: PathBuf,
    fresh: Vec<PathBuf>,
    /// AAAA for the steady names.
    no_address: PathBuf,
}

impl QueryFiles {
    fn write(dir: &Path, plan: &NamePlan) -> Result<QueryFiles> {
        let write = |name: &str, group: Group, qtype: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, plan.query_file(group, qtype))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        };
        Ok(QueryFiles {
            steady: write("steady.queries", Group::Steady, "A")?,
            fresh: (0..plan.rounds)
                .map(|round| write(&format!("fresh-{round}.queries"), Group::Fresh(round), "A"))
                .collect::<Result<_>>()?,
            no_address: write("steady-aaaa.queries", Group::Steady, "AAAA")?,
        })
    }
}

/// One dnsperf run with the CPU every tracked process (and the client)
/// spent during it.
#[allow(clippy::too_many_arguments)]
fn measure(
    pod: &ClusterPod,
    setup: Setup,
    workload: Workload,
    round: usize,
    file: &Path,
    once: bool,
    args: &Args,
    tracked: &[(&'static str, Vec<u32>)],
) -> Result<Sample> {
    let cpu = || -> Vec<f64> {
        tracked
            .iter()
            .map(|(_, pids)| {
                pids.iter()
                    .map(|&pid| procstat::process_cpu_seconds(pid).unwrap_or(0.0))
                    .sum()
            })
            .collect()
    };
    let before = cpu();
    let client_before = procstat::reaped_children_cpu_seconds();
    let server = match setup {
        Setup::Direct => DIRECT_SERVER,
        Setup::Proxy => PROXIED_SERVER,
    };
    let run = dnsperf::run(pod.namespace(), server, file, args.shape, once)?;
    let mut cpu_seconds: Vec<f64> = cpu().iter().zip(&before).map(|(a, b)| a - b).collect();
    cpu_seconds.push(procstat::reaped_children_cpu_seconds() - client_before);
    eprintln!(
        "    {:<28} {:>8.0} queries/s  p50 {:>8.0} µs  p99 {:>8.0} µs  lost {}",
        setup.label(),
        run.per_second,
        run.p50_us(),
        run.p99_us(),
        run.lost
    );
    Ok(Sample {
        setup,
        workload,
        round,
        run,
        cpu_seconds,
    })
}

/// Before measuring: the direct server answers without the proxy (nothing
/// learned, the address stays dropped), the proxied one through it (the
/// name is learned and its address reachable).
fn check_paths(cluster: &Cluster, pod: &ClusterPod, plan: &NamePlan) -> Result<Vec<String>> {
    let node = cluster.node(0);
    let ip = plan.check_address();
    let cached = || -> Result<bool> {
        Ok(node
            .client()
            .fqdn_cache_list(Some("*.check.test"))?
            .iter()
            .any(|l| l.fqdn.trim_end_matches('.') == CHECK_NAME))
    };
    // The policy may take a moment after the import to reach the
    // datapath, and the proxy's listener a moment more.
    let answers = |server| -> Result<Duration> {
        let start = Instant::now();
        let mut last = None;
        let answered = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
            last = probe::resolve(pod.namespace(), server, CHECK_NAME, ip).err();
            last.is_none()
        });
        ensure!(
            answered,
            "{server} did not answer {CHECK_NAME}: {last:?}\n{}",
            cluster.describe()
        );
        Ok(start.elapsed())
    };
    let mut checks = Vec::new();
    let waited = answers(DIRECT_SERVER)?;
    ensure!(
        !cached()?,
        "{CHECK_NAME} was learned from the direct server's answer"
    );
    ensure!(
        !pod.tcp_connect(ip, TCP_PORT, Duration::from_millis(700)),
        "{ip}:{TCP_PORT} reachable after the direct server's answer"
    );
    checks.push(format!(
        "direct ({DIRECT_SERVER}): `{CHECK_NAME}` answered {ip} ({:.1} s after the policy \
         import returned); the agent learned nothing and a connection to {ip}:{TCP_PORT} was \
         dropped",
        waited.as_secs_f64()
    ));
    let waited = answers(PROXIED_SERVER)?;
    ensure!(cached()?, "{CHECK_NAME} not learned through the proxy");
    ensure!(
        pod.tcp_connect(ip, TCP_PORT, Duration::from_millis(700)),
        "{ip}:{TCP_PORT} not reachable after the proxy's answer"
    );
    checks.push(format!(
        "proxied ({PROXIED_SERVER}): `{CHECK_NAME}` answered {ip} ({:.1} s later), the \
         agent's FQDN cache lists it, and a connection to {ip}:{TCP_PORT} went through",
        waited.as_secs_f64()
    ));
    Ok(checks)
}
