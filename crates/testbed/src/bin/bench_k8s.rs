//! `cilium-bench-k8s`: Kubernetes mode at cluster scale (issue 16), on a
//! testbed cluster of 5 nodes (agents in Kubernetes mode; identities,
//! endpoints and nodes as CRD objects by default, or in etcd with
//! `--identity-allocation-mode kvstore`) against the real control plane,
//! with 1,000 Pod objects spread over the nodes. Only a few pods get a network namespace (`k8s_pod`: the
//! Pod object, CNI ADD, Ready status); the rest are objects with a
//! kubelet-style Ready status, created as one List.
//!
//! 1. `kubectl apply` of a CiliumNetworkPolicy → enforced on every node,
//!    over 100 changes (see `changes`).
//! 2. A new pod → reachable under policy from another node (`new_pods`).
//! 3. Each agent's memory and CPU, and its requests to the API server per
//!    minute, at steady state (`footprint`).
//!
//! Usage: `cilium-bench-k8s [--identity-allocation-mode crd|kvstore]
//! [--pods N] [--changes N] [--new-pods N] [--quiet-seconds N] [--output
//! FILE]` (root). Everything it creates is
//! released by Drop guards, also on Ctrl-C; bench/k8s/run.sh sweeps up
//! after a SIGKILL.

#[path = "bench_k8s/audit.rs"]
mod audit;
#[path = "bench_k8s/changes.rs"]
mod changes;
#[path = "bench_k8s/footprint.rs"]
mod footprint;
#[path = "bench_k8s/new_pods.rs"]
mod new_pods;
#[path = "bench_k8s/objects.rs"]
mod objects;
#[path = "bench_k8s/report.rs"]
mod report;
#[path = "bench_k8s/sampler.rs"]
mod sampler;
#[path = "bench_k8s/status_watch.rs"]
mod status_watch;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use testbed::bench::entry::{self, step};
use testbed::bench::process_table::agent_pid;
use testbed::bench::procstat::memory_kib;
use testbed::bench::{machine, signals, Flags, Machine};
use testbed::cluster::{Cluster, ClusterOptions};
use testbed::kubernetes::{self, ControlPlane};

use objects::{CLOSED_PORT, NAMESPACE, PORT};

const NODES: usize = 5;
const USAGE: &str = "cilium-bench-k8s [--identity-allocation-mode crd|kvstore] [--pods 1000] \
                     [--changes 100] [--new-pods 30] [--quiet-seconds 300] [--output FILE]";

pub struct Args {
    /// The agents' `--identity-allocation-mode`: `crd` (their default in
    /// Kubernetes mode, and Cilium's; no etcd) or `kvstore` (etcd).
    pub mode: String,
    /// Pod objects before measurement 1, the real pods included.
    pub pods: usize,
    pub changes: usize,
    pub new_pods: usize,
    pub quiet: Duration,
    output: Option<PathBuf>,
}

fn parse_args(argv: std::iter::Skip<std::env::Args>) -> Result<Args> {
    let mut args = Args {
        mode: "crd".into(),
        pods: 1_000,
        changes: 100,
        new_pods: 30,
        quiet: Duration::from_secs(300),
        output: None,
    };
    let mut flags = Flags::new(argv, USAGE);
    while let Some(flag) = flags.next_flag()? {
        match flag.name.as_str() {
            "--identity-allocation-mode" => args.mode = flag.value.clone(),
            "--pods" => args.pods = flag.number()?,
            "--changes" => args.changes = flag.number()?,
            "--new-pods" => args.new_pods = flag.number()?,
            "--quiet-seconds" => args.quiet = Duration::from_secs(flag.number()?),
            "--output" => args.output = Some(flag.path()),
            _ => return Err(flag.unknown()),
        }
    }
    ensure!(
        args.pods >= real_pods() && args.pods <= 4 * 250 * NODES,
        "--pods: {} to {}",
        real_pods(),
        4 * 250 * NODES
    );
    ensure!(
        ["crd", "kvstore"].contains(&args.mode.as_str()),
        "--identity-allocation-mode: crd or kvstore"
    );
    ensure!(
        args.changes > 0 && args.new_pods > 0,
        "--changes and --new-pods must be > 0"
    );
    ensure!(
        args.quiet >= Duration::from_secs(10),
        "--quiet-seconds must be at least 10"
    );
    Ok(args)
}

/// A server and a prober per node, and one stranger.
fn real_pods() -> usize {
    2 * NODES + 1
}

fn main() -> ExitCode {
    entry::main(parse_args, run)
}

/// Everything the page reports.
pub struct Results {
    pub setup: Setup,
    pub changes: Vec<changes::ChangeSample>,
    /// Per change: the agents' own time for it (the slowest node's `total`
    /// in its `policy from Kubernetes` log line).
    pub agent_ms: Vec<Option<f64>>,
    /// Per change: when the API server received the object's write (audit
    /// log), from the change's start.
    pub write_received: Vec<Option<Duration>>,
    pub new_pods: Vec<new_pods::PodSample>,
    pub footprint: footprint::Footprint,
    /// Load average when each measurement began.
    pub loads: Vec<(&'static str, String)>,
    /// Each agent's VmRSS (KiB, node order) at the bench's milestones.
    pub rss: Vec<(&'static str, Vec<u64>)>,
    pub pod_objects_end: usize,
}

pub struct Setup {
    pub fillers: usize,
    pub create_fillers: Duration,
    pub filler_status: Duration,
    pub pod_objects: usize,
    /// `kubectl get --raw /readyz`, median of 5: what any kubectl run costs.
    pub kubectl_noop: Duration,
}

fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let machine = Machine::probe();
    // Before the agents start: another session may rebuild the binary
    // during the run (the running agents keep the old one).
    let build = build_facts();
    // kube-apiserver writes its audit log (measurement 3); the control
    // plane script reads this when the cluster starts it.
    std::env::set_var("K8S_AUDIT", "1");
    step(
        started,
        &format!(
            "starting the control plane and {NODES} agents ({} mode)",
            args.mode
        ),
    );
    let cluster = Cluster::start_kubernetes(
        ClusterOptions {
            nodes: NODES,
            // CRD mode keeps everything in the API server: no etcd.
            etcd_members: usize::from(args.mode == "kvstore"),
        },
        &["--identity-allocation-mode", &args.mode],
    )?;
    // Every agent lists every node (through CiliumNodes in CRD mode).
    cluster.wait_discovered(Duration::from_secs(60))?;
    let results = measure_all(args, &cluster, started);
    if results.is_err() && !signals::stopped() {
        for node in cluster.nodes() {
            eprintln!(
                "---- {} agent log tail ----\n{}",
                node.name(),
                node.agent().log_tail()
            );
        }
    }
    let page = report::page(args, &machine, &build, &results?);
    entry::publish(&page, args.output.as_deref())
}

fn measure_all(args: &Args, cluster: &Cluster, started: Instant) -> Result<Results> {
    let plane = cluster.control_plane();
    let mut rss = vec![("agents up, no pods yet", rss_kib(cluster)?)];
    plane.apply(&objects::namespace())?;
    wait_service_account(plane)?;
    // Servers and new pods are isolated from their first moment.
    plane.apply(&objects::ingress_policy(
        "flip-base",
        "flip-server",
        CLOSED_PORT,
    ))?;
    plane.apply(&objects::ingress_policy("fresh", "fresh", PORT))?;

    step(started, "creating the pods with a network namespace");
    let mut servers = Vec::new();
    let mut probers = Vec::new();
    for i in 0..NODES {
        servers.push(cluster.k8s_pod(
            i,
            NAMESPACE,
            &format!("server-{i}"),
            &["app=flip-server"],
            &[],
        )?);
        probers.push(cluster.k8s_pod(
            i,
            NAMESPACE,
            &format!("prober-{i}"),
            &["app=prober"],
            &[],
        )?);
    }
    let stranger = cluster.k8s_pod(0, NAMESPACE, "stranger", &["app=stranger"], &[])?;
    let _listeners = servers
        .iter()
        .map(|s| s.serve_tcp(PORT))
        .collect::<Result<Vec<_>>>()?;

    let setup = create_fillers(args, cluster, started)?;
    rss.push(("all Pod objects created", rss_kib(cluster)?));
    let mut loads = vec![("policy changes", machine::load_average())];
    step(started, "starting the status watch, probers and pollers");
    let kubectl = kubernetes::binaries()?.join("kubectl");
    let mut watch = status_watch::StatusWatch::start(&kubectl, plane.kubeconfig(), NAMESPACE)?;
    let signals = changes::Signals::start(cluster, &servers, &probers)?;
    let samples = changes::measure(cluster, &signals, &mut watch, args.changes, started)?;
    drop(signals);
    drop(watch);
    let agent_ms = agent_times(cluster, &samples);
    let log = audit::read(cluster)?;
    let write_received = samples
        .iter()
        .map(|s| {
            audit::write_received(&log, &s.object, s.start_unix_us)
                .map(|at| Duration::from_micros(at - s.start_unix_us))
        })
        .collect();
    drop(log);

    rss.push(("after the policy changes", rss_kib(cluster)?));
    loads.push(("new pods", machine::load_average()));
    let (new_pods, kept) = new_pods::measure(cluster, &probers, args.new_pods, started)?;
    new_pods::check_policy(&stranger, &probers, &kept)?;

    // Let the last status writes and endpoint work end before the window.
    std::thread::sleep(Duration::from_secs(5));
    rss.push((
        "after the new pods (quiet window starts)",
        rss_kib(cluster)?,
    ));
    loads.push(("quiet window", machine::load_average()));
    step(
        started,
        &format!("quiet window of {} s", args.quiet.as_secs()),
    );
    let footprint = footprint::measure(cluster, args.quiet)?;
    rss.push((
        "quiet window ends",
        footprint.agents.iter().map(|a| a.rss_kib).collect(),
    ));
    let pod_objects_end = count_pods(plane)?;
    Ok(Results {
        setup,
        changes: samples,
        agent_ms,
        write_received,
        new_pods,
        footprint,
        loads,
        rss,
        pod_objects_end,
    })
}

/// The Pod objects without a network namespace, spread over the nodes:
/// created as one List, then given a kubelet-style status as one
/// server-side apply of the status subresource.
fn create_fillers(args: &Args, cluster: &Cluster, started: Instant) -> Result<Setup> {
    let plane = cluster.control_plane();
    let fillers = args.pods - real_pods();
    step(started, &format!("creating {fillers} Pod objects"));
    let dir = plane
        .kubeconfig()
        .parent()
        .context("control plane directory")?;
    let t = cluster.addressing().bridge_ip().octets()[2];
    // Addresses inside the cluster pool but outside every node's pod CIDR
    // (10.T.<node>.0/24): nothing routes to them.
    let pod_ip =
        |node: usize, n: usize| format!("10.{t}.{}.{}", 100 + node * 4 + n / 250, n % 250 + 1);
    let pods_file = dir.join("fillers.json");
    let status_file = dir.join("filler-status.json");
    std::fs::write(&pods_file, objects::filler_pods(fillers, NODES))?;
    std::fs::write(
        &status_file,
        objects::filler_statuses(fillers, NODES, pod_ip),
    )?;
    let mut setup = Setup {
        fillers,
        create_fillers: Duration::ZERO,
        filler_status: Duration::ZERO,
        pod_objects: 0,
        kubectl_noop: Duration::ZERO,
    };
    if fillers > 0 {
        let clock = Instant::now();
        plane.kubectl(&["create", "-f", &pods_file.display().to_string()])?;
        setup.create_fillers = clock.elapsed();
        let clock = Instant::now();
        plane.kubectl(&[
            "apply",
            "--server-side",
            "--subresource=status",
            "--field-manager=bench-kubelet",
            "-f",
            &status_file.display().to_string(),
        ])?;
        setup.filler_status = clock.elapsed();
    }
    setup.pod_objects = count_pods(plane)?;
    ensure!(
        setup.pod_objects == args.pods,
        "{} Pod objects, expected {}",
        setup.pod_objects,
        args.pods
    );
    let mut noop = Vec::new();
    for _ in 0..5 {
        let clock = Instant::now();
        plane.kubectl(&["get", "--raw", "/readyz"])?;
        noop.push(clock.elapsed());
    }
    noop.sort();
    setup.kubectl_noop = noop[2];
    // Each agent lists and caches its node's new pods.
    std::thread::sleep(Duration::from_secs(5));
    Ok(setup)
}

/// Each node's agent's VmRSS in KiB, in node order.
fn rss_kib(cluster: &Cluster) -> Result<Vec<u64>> {
    cluster
        .nodes()
        .iter()
        .map(|n| Ok(memory_kib(agent_pid(n.agent().socket())?)?.0))
        .collect()
}

/// Which agent binary and source the run measures.
fn build_facts() -> Vec<String> {
    let agent = testbed::find_binary("cilium-agent", testbed::agent::AGENT_BIN_ENV)
        .map(|p| {
            let path = p.display().to_string();
            let built = machine::tool_version("date", &["-u", "-r", &path, "+%Y-%m-%d %H:%M UTC"]);
            format!("cilium-agent {path} built {built}")
        })
        .unwrap_or_else(|e| format!("cilium-agent: {e}"));
    let head = machine::tool_version("git", &["rev-parse", "--short", "HEAD"]);
    // The agents inherit the bench's environment: allocator settings
    // change their memory.
    let malloc: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("MALLOC_") || k.starts_with("GLIBC_TUNABLES"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let malloc = match malloc.is_empty() {
        true => "none (glibc defaults)".to_string(),
        false => malloc.join(" "),
    };
    vec![
        agent,
        format!("repository HEAD {head} at the start"),
        format!("allocator settings in the agents' environment: {malloc}"),
    ]
}

fn count_pods(plane: &ControlPlane) -> Result<usize> {
    Ok(plane
        .kubectl(&["get", "pods", "-A", "--no-headers", "-o", "name"])?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count())
}

/// A new namespace's default service account appears a moment after it;
/// until then the API server refuses its pods.
fn wait_service_account(plane: &ControlPlane) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while plane
        .kubectl(&["get", "serviceaccount", "-n", NAMESPACE, "default"])
        .is_err()
    {
        signals::check()?;
        if Instant::now() >= deadline {
            bail!("no default service account in namespace {NAMESPACE} after 30 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Per change, the slowest node's own time for it: the `total` of the
/// agent's `policy from Kubernetes: … revision R: …` log line, R being the
/// revision that node wrote into the status.
fn agent_times(cluster: &Cluster, samples: &[changes::ChangeSample]) -> Vec<Option<f64>> {
    let logs: Vec<(String, String)> = cluster
        .nodes()
        .iter()
        .map(|n| {
            let log = std::fs::read_to_string(n.agent().log_path()).unwrap_or_default();
            (n.name().to_string(), log)
        })
        .collect();
    samples
        .iter()
        .map(|s| {
            let mut slowest: Option<f64> = None;
            for (node, log) in &logs {
                let revision = s.revisions.get(node)?;
                let wanted = format!("revision {revision}: ");
                let total = log
                    .lines()
                    .filter(|l| l.contains("policy from Kubernetes"))
                    .find_map(|l| l.split_once(&wanted).map(|(_, rest)| rest))
                    .and_then(|rest| rest.split("total ").nth(1))
                    .and_then(|v| v.split(' ').next())
                    .and_then(|v| v.parse::<f64>().ok())?;
                slowest = Some(slowest.map_or(total, |s| s.max(total)));
            }
            slowest
        })
        .collect()
}
