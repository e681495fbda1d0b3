//! `cilium-bench-cluster`: the cross-node benchmark (`bench/cluster/run.sh`).
//!
//! 1. Pod to pod across two nodes, side by side: (ours) a testbed cluster of
//!    two agents with one etcd member and a policy allowing the flow, and
//!    (plain) two plain namespaces on the same kind of bridge underlay with a
//!    plain `vxlan id 42 dstport 4789` device each, static fdb, neighbours
//!    and routes, pods behind them with host routing and no BPF at all.
//!    Latency (sockperf), new connections/s (own loop), throughput (iperf3),
//!    rounds interleaved with the order rotated, medians over rounds.
//! 2. Propagation: a pod with a new identity created on node 0 until a probe
//!    from it to node 1's server (allowed by node 1's policy) completes.
//! 3. Identity allocation against a loopback etcd, straight through
//!    `identity::cluster::ClusterAllocator`, from one and from two allocators.
//!
//! The measurement helpers (`testbed::bench::measure`) are shared with
//! `cilium-bench-datapath`. Everything it creates has a `Drop` guard;
//! Ctrl-C unwinds through them.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testbed::bench::servers::CONNECT_PORT;
use testbed::bench::stats::{advantage, nearest_rank};
use testbed::bench::{entry, measure, signals, Flags, Machine, ServerSet};
use testbed::cluster::underlay::{self, Addressing, Bridge};
use testbed::cluster::{Cluster, ClusterOptions, ClusterPod};
use testbed::etcd::EtcdCluster;
use testbed::{cmd, NetNs};

const POLICY: &str = r#"
- endpointSelector: {matchLabels: {app: bench-server}}
  labels: ["k8s:policy=bench-cluster"]
  ingress:
  - fromEndpoints: [{matchLabels: {app: bench-client}}]
    toPorts: [{ports: [{port: "11111", protocol: TCP}, {port: "5201", protocol: TCP}, {port: "7000", protocol: TCP}]}]
  - fromEndpoints: [{matchLabels: {app: bench-prop}}]
    toPorts: [{ports: [{port: "7000", protocol: TCP}]}]
"#;

/// How long one propagation probe may take before it counts as failed.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(5);
/// Each probe attempt's handshake timeout: a denied SYN is dropped, so
/// this is the resolution of the propagation measurement.
const PROBE_ATTEMPT: Duration = Duration::from_millis(2);

struct Args {
    output: Option<PathBuf>,
    rounds: usize,
    seconds: u64,
    endpoints: usize,
    label_sets: usize,
}

const USAGE: &str = "cilium-bench-cluster [--output FILE] [--rounds 7] [--seconds 3] [--endpoints 200] [--label-sets 300]";

fn parse_args(argv: impl Iterator<Item = String>) -> Result<Args> {
    let mut a = Args {
        output: None,
        rounds: 7,
        seconds: 3,
        endpoints: 200,
        label_sets: 300,
    };
    let mut flags = Flags::new(argv, USAGE);
    while let Some(flag) = flags.next_flag()? {
        match flag.name.as_str() {
            "--output" => a.output = Some(flag.path()),
            "--rounds" => a.rounds = flag.number()?,
            "--seconds" => a.seconds = flag.number()?,
            "--endpoints" => a.endpoints = flag.number()?,
            "--label-sets" => a.label_sets = flag.number()?,
            _ => return Err(flag.unknown()),
        }
    }
    if a.rounds == 0 || a.seconds == 0 || a.endpoints == 0 || a.label_sets < 2 {
        bail!("--rounds, --seconds, --endpoints must be > 0 and --label-sets >= 2");
    }
    Ok(a)
}

/// Two plain nodes with a kernel VXLAN device each and one pod behind each.
/// Field order is drop order: pods, nodes, bridge.
struct PlainVxlan {
    pods: Vec<NetNs>,
    nodes: Vec<NetNs>,
    _bridge: Bridge,
    pod_ips: Vec<Ipv4Addr>,
}

impl PlainVxlan {
    fn create(seed: u32) -> Result<PlainVxlan> {
        let pid = std::process::id();
        let addressing = Addressing::pick(seed)?;
        let t = addressing.bridge_ip().octets()[2];
        let bridge = Bridge::create(
            &format!("cbv{:06x}", pid & 0xff_ffff),
            addressing.bridge_ip(),
        )?;
        let mut plain = PlainVxlan {
            pods: Vec::new(),
            nodes: Vec::new(),
            _bridge: bridge,
            pod_ips: Vec::new(),
        };
        for i in 0..2 {
            let node = NetNs::create(&format!("cbcl-{pid}-pnode{i}"))?;
            node.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
            node.sysctl("net.ipv4.ip_forward", "1")?;
            let port = format!("cbv{:06x}p{i}", pid & 0xff_ffff);
            underlay::attach_node(
                &plain._bridge,
                &port,
                &node,
                addressing.node_ip(i),
                addressing.bridge_ip(),
            )?;
            plain.nodes.push(node);
            let pod = NetNs::create(&format!("cbcl-{pid}-ppod{i}"))?;
            pod.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
            plain.pods.push(pod);
        }
        for i in 0..2usize {
            let peer = 1 - i;
            let ns = plain.nodes[i].name().to_string();
            let pod = plain.pods[i].name().to_string();
            let mac = |n: usize| format!("02:00:00:00:{t:02x}:{n:02x}");
            let local = addressing.node_ip(i).to_string();
            let remote = addressing.node_ip(peer).to_string();
            let vx_peer = format!("10.{t}.250.{}", peer + 1);
            let vx_self = format!("10.{t}.250.{}/24", i + 1);
            let gw = format!("10.{t}.{i}.1");
            let pod_ip = Ipv4Addr::new(10, t, i as u8, 10);
            let steps: Vec<Vec<String>> = [
                vec![
                    "link",
                    "add",
                    "vx0",
                    "address",
                    &mac(i),
                    "type",
                    "vxlan",
                    "id",
                    "42",
                    "dstport",
                    "4789",
                    "local",
                    &local,
                    "dev",
                    underlay::NODE_IFNAME,
                    "nolearning",
                ],
                vec!["addr", "add", &vx_self, "dev", "vx0"],
                vec!["link", "set", "vx0", "up"],
                vec![
                    "neigh",
                    "replace",
                    &vx_peer,
                    "lladdr",
                    &mac(peer),
                    "dev",
                    "vx0",
                    "nud",
                    "permanent",
                ],
                vec![
                    "route",
                    "add",
                    &format!("10.{t}.{peer}.0/24"),
                    "via",
                    &vx_peer,
                    "dev",
                    "vx0",
                    "onlink",
                ],
                vec![
                    "link", "add", "hv0", "type", "veth", "peer", "name", "eth0", "netns", &pod,
                ],
                vec!["link", "set", "hv0", "mtu", "1500"],
                vec!["addr", "add", &format!("{gw}/24"), "dev", "hv0"],
                vec!["link", "set", "hv0", "up"],
            ]
            .iter()
            .map(|v| {
                let mut full = vec!["-n".to_string(), ns.clone()];
                full.extend(v.iter().map(|s| s.to_string()));
                full
            })
            .chain(
                [
                    vec!["link", "set", "lo", "up"],
                    vec!["link", "set", "eth0", "mtu", "1500"],
                    vec!["addr", "add", &format!("{pod_ip}/24"), "dev", "eth0"],
                    vec!["link", "set", "eth0", "up"],
                    vec!["route", "add", "default", "via", &gw],
                ]
                .iter()
                .map(|v| {
                    let mut full = vec!["-n".to_string(), pod.clone()];
                    full.extend(v.iter().map(|s| s.to_string()));
                    full
                }),
            )
            .collect();
            for step in steps {
                let args: Vec<&str> = step.iter().map(String::as_str).collect();
                cmd::ip(&args).with_context(|| format!("plain VXLAN: ip {}", args.join(" ")))?;
            }
            cmd::run(
                "bridge",
                &[
                    "-n",
                    &ns,
                    "fdb",
                    "append",
                    "00:00:00:00:00:00",
                    "dev",
                    "vx0",
                    "dst",
                    &remote,
                ],
            )?;
            plain.pod_ips.push(pod_ip);
        }
        Ok(plain)
    }
}

/// Picks one metric's samples.
type Column = fn(&Samples) -> &Vec<f64>;

/// Samples of one configuration, one per round.
#[derive(Default)]
struct Samples {
    p50: Vec<f64>,
    p99: Vec<f64>,
    conns: Vec<f64>,
    gbps: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    nearest_rank(v, 0.5)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    nearest_rank(v, p / 100.0)
}

/// Runs every metric on both configurations per round, order rotated. Each
/// counted measurement follows an uncounted one-second run of the same
/// metric on the same path: without it, whichever path went first after
/// the previous metric (throughput leaves the machine busy for a while)
/// measured slower, which showed as the per-round winner flipping with the
/// order.
fn datapath_rounds(args: &Args, configs: [(&NetNs, Ipv4Addr); 2]) -> Result<[Samples; 2]> {
    let mut out = [Samples::default(), Samples::default()];
    let d = Duration::from_secs(args.seconds);
    for round in 0..args.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for (metric, what) in METRICS.iter().enumerate() {
            for &c in &order {
                signals::check()?;
                let (client, server) = configs[c];
                let name = ["ours", "plain"][c];
                run_metric(metric, client, server, WARM_UP, &mut Samples::default())
                    .with_context(|| format!("{what} warm-up ({name})"))?;
                run_metric(metric, client, server, d, &mut out[c])
                    .with_context(|| format!("{what} ({name})"))?;
            }
        }
        eprintln!(
            "round {}: ours p50 {:.1} µs, {:.0} conn/s, {:.1} Gbit/s | plain p50 {:.1} µs, {:.0} conn/s, {:.1} Gbit/s",
            round + 1,
            out[0].p50[round],
            out[0].conns[round],
            out[0].gbps[round],
            out[1].p50[round],
            out[1].conns[round],
            out[1].gbps[round]
        );
    }
    Ok(out)
}

/// The metrics `run_metric` measures, by index.
const METRICS: [&str; 3] = ["latency", "connections", "throughput"];
/// The uncounted run before each measurement.
const WARM_UP: Duration = Duration::from_secs(1);

/// Measures `METRICS[metric]` from `client` to `server` for `d` into `into`.
fn run_metric(
    metric: usize,
    client: &NetNs,
    server: Ipv4Addr,
    d: Duration,
    into: &mut Samples,
) -> Result<()> {
    match metric {
        0 => {
            let l = measure::latency(client, server, d)?;
            into.p50.push(l.p50_us);
            into.p99.push(l.p99_us);
        }
        1 => into
            .conns
            .push(measure::conn_rate(client, server, d)?.per_second),
        _ => into.gbps.push(measure::throughput_gbps(client, server, d)?),
    }
    Ok(())
}

/// Retries short handshakes from `pod` until one completes: the time it
/// took and the number of attempts.
fn probe_until_connected(pod: &ClusterPod, to: SocketAddr) -> Result<Option<(Duration, u32)>> {
    let started = Instant::now();
    pod.namespace().run(move || {
        let mut attempts = 0;
        loop {
            attempts += 1;
            if TcpStream::connect_timeout(&to, PROBE_ATTEMPT).is_ok() {
                return Some((started.elapsed(), attempts));
            }
            if started.elapsed() > PROPAGATION_LIMIT || signals::stopped() {
                return None;
            }
        }
    })
}

/// Polls node `client`'s `cilium_ipcache` (GET /v1/map) until it holds
/// `ip`/32 with a cluster identity: the time and the identity.
fn wait_ipcache(client: &api::Client, ip: Ipv4Addr) -> Option<(Duration, u32)> {
    let started = Instant::now();
    let prefix = format!("{ip}/32");
    while started.elapsed() < PROPAGATION_LIMIT && !signals::stopped() {
        if let Ok(map) = client.map_get("cilium_ipcache") {
            let found = map.entries.iter().find_map(|e| match e {
                api::models::BpfMapEntry::Ipcache {
                    prefix: p,
                    identity,
                    ..
                } if *p == prefix && *identity >= 256 => Some(*identity),
                _ => None,
            });
            if let Some(id) = found {
                return Some((started.elapsed(), id));
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

struct Propagation {
    ms: Vec<f64>,
    add_ms: Vec<f64>,
    ipcache_ms: Vec<f64>,
    /// Probes that needed more than one attempt (the first SYN was dropped).
    retried: usize,
    /// ipcache entries on node 1 whose identity differs from the pod's.
    wrong_identity: usize,
    failed: usize,
}

/// Pods with a new identity each on node 0; each probe goes to node 1's server.
fn propagation(cluster: &Cluster, server: Ipv4Addr, count: usize) -> Result<Propagation> {
    let to = SocketAddr::from((server, CONNECT_PORT));
    let mut pods = Vec::with_capacity(count);
    let mut result = Propagation {
        ms: Vec::new(),
        add_ms: Vec::new(),
        ipcache_ms: Vec::new(),
        retried: 0,
        wrong_identity: 0,
        failed: 0,
    };
    let remote = cluster.node(1).client();
    for i in 0..count {
        signals::check()?;
        let idx = format!("k8s:idx={i}");
        let started = Instant::now();
        let pod = cluster
            .pod(0, &format!("prop{i}"), &["k8s:app=bench-prop", &idx])
            .with_context(|| format!("propagation pod {i}"))?;
        result.add_ms.push(started.elapsed().as_secs_f64() * 1e3);
        let (probe, ipcache) = std::thread::scope(|scope| {
            let watcher = scope.spawn(|| wait_ipcache(&remote, pod.ip()));
            let probe = probe_until_connected(&pod, to);
            (probe, watcher.join().ok().flatten())
        });
        match probe? {
            Some((took, attempts)) => {
                result.ms.push(took.as_secs_f64() * 1e3);
                result.retried += usize::from(attempts > 1);
            }
            None => result.failed += 1,
        }
        if let Some((took, id)) = ipcache {
            result.ipcache_ms.push(took.as_secs_f64() * 1e3);
            result.wrong_identity += usize::from(pod.identity().ok() != Some(id));
        }
        pods.push(pod);
        if (i + 1) % 50 == 0 {
            eprintln!(
                "propagation: {} endpoints, p50 {:.1} ms so far",
                i + 1,
                median(&result.ms)
            );
        }
    }
    eprintln!("propagation: deleting {} pods", pods.len());
    drop(pods);
    Ok(result)
}

struct Allocation {
    one: f64,
    two_disjoint: f64,
    two_same: f64,
    consistent: bool,
}

/// Allocations/s through `ClusterAllocator` against a fresh loopback etcd.
fn identity_allocation(n: usize) -> Result<Allocation> {
    use identity::cluster::ClusterAllocator;
    use kvstore::{KvstoreConfig, Session};
    use policy::labels::Labels;

    let etcd = EtcdCluster::start(1)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let connect = || async {
            let opts = [etcd.kvstore_opt(), "etcd.operationTimeout=5s".to_string()];
            let config = KvstoreConfig::from_flags("etcd", &opts)?;
            let kv = config.connect(None).await?;
            Ok::<_, anyhow::Error>(Session::start(kv, Duration::from_secs(10)))
        };
        let a = ClusterAllocator::start(connect().await?, "bench-a")?;
        let b = ClusterAllocator::start(connect().await?, "bench-b")?;
        let sets = |phase: &str, range: std::ops::Range<usize>| -> Result<Vec<Labels>> {
            range
                .map(|i| {
                    Labels::parse_all(&[
                        "k8s:app=alloc".to_string(),
                        format!("k8s:set={phase}-{i}"),
                    ])
                    .map_err(anyhow::Error::from)
                })
                .collect()
        };
        async fn run(alloc: &ClusterAllocator, sets: &[Labels]) -> Result<Vec<u32>> {
            let mut ids = Vec::with_capacity(sets.len());
            for l in sets {
                ids.push(alloc.allocate(l).await?.0.id);
            }
            Ok(ids)
        }
        // Warm up the connections and the session leases.
        run(&a, &sets("warm", 0..5)?).await?;
        run(&b, &sets("warm", 5..10)?).await?;

        let one = sets("one", 0..n)?;
        let t = Instant::now();
        run(&a, &one).await?;
        let one_rate = n as f64 / t.elapsed().as_secs_f64();

        let (ha, hb) = (sets("dis", 0..n / 2)?, sets("dis", n / 2..n)?);
        let t = Instant::now();
        let (ra, rb) = tokio::join!(run(&a, &ha), run(&b, &hb));
        ra?;
        rb?;
        let disjoint = n as f64 / t.elapsed().as_secs_f64();

        let same = sets("same", 0..n)?;
        let mut reversed = same.clone();
        reversed.reverse();
        let t = Instant::now();
        let (ra, rb) = tokio::join!(run(&a, &same), run(&b, &reversed));
        let elapsed = t.elapsed();
        let (ra, mut rb) = (ra?, rb?);
        rb.reverse();
        Ok(Allocation {
            one: one_rate,
            two_disjoint: disjoint,
            two_same: n as f64 / elapsed.as_secs_f64(),
            consistent: ra == rb,
        })
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

fn report(
    args: &Args,
    machine: &Machine,
    dp: &[Samples; 2],
    prop: &Propagation,
    alloc: &Allocation,
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Cluster benchmark — {}\n", machine.date);
    let _ = writeln!(
        o,
        "Machine: {} × {}, Linux {}; load average at start {}.  ",
        machine.cpus,
        machine.cpu_model,
        machine.kernel,
        machine.load_1_5_15()
    );
    let _ = writeln!(
        o,
        "Run: {} rounds, ours/plain interleaved (order rotated per round), {} s per measurement after an uncounted 1 s warm-up of the same metric and path; medians over rounds. The verdict is on the paired ratio: each round's ours/plain, taken a few seconds apart, so the VM's speed drifting between rounds cancels out; its median over rounds, with the range.\n",
        args.rounds, args.seconds
    );
    let _ = writeln!(
        o,
        "## Cross-node pod to pod: ours vs plain VXLAN (no BPF)\n"
    );
    let _ = writeln!(
        o,
        "| metric | ours | plain VXLAN | ratio of medians | paired ratio (min–max) | target |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---|");
    let rows: [(&str, Column, bool); 4] = [
        ("TCP RR latency p50 (µs)", |s| &s.p50, true),
        ("TCP RR latency p99 (µs)", |s| &s.p99, true),
        ("new TCP connections/s", |s| &s.conns, false),
        ("iperf3 1 stream (Gbit/s)", |s| &s.gbps, false),
    ];
    for (name, get, lower_better) in rows {
        let (ours, plain) = (median(get(&dp[0])), median(get(&dp[1])));
        let ratio = advantage(ours, plain, lower_better);
        let paired: Vec<f64> = get(&dp[0])
            .iter()
            .zip(get(&dp[1]))
            .map(|(&o, &p)| advantage(o, p, lower_better))
            .collect();
        let (low, high) = paired
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &r| (l.min(r), h.max(r)));
        let pair = median(&paired);
        let _ = writeln!(
            o,
            "| {name} | {ours:.2} | {plain:.2} | {ratio:.2} | {pair:.2} ({low:.2}–{high:.2}) {} | ≥ 0.95 |",
            verdict(pair >= 0.95)
        );
    }
    let _ = writeln!(
        o,
        "\nFor latency the ratio is plain/ours (above 1 = ours better). Per round (ours | plain): {}\n",
        (0..dp[0].p50.len())
            .map(|r| format!(
                "p50 {:.1}|{:.1} µs, p99 {:.1}|{:.1} µs, {:.0}|{:.0} conn/s, {:.1}|{:.1} Gbit/s",
                dp[0].p50[r], dp[1].p50[r], dp[0].p99[r], dp[1].p99[r], dp[0].conns[r],
                dp[1].conns[r], dp[0].gbps[r], dp[1].gbps[r]
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let p99 = percentile(&prop.ms, 99.0);
    let _ = writeln!(
        o,
        "## Propagation: endpoint on node 0 → enforced on node 1\n"
    );
    let _ = writeln!(
        o,
        "{} endpoints, each with a new identity, created one after another with `cilium-cni ADD` on node 0 and kept; \
         timed from ADD's return until a handshake from the new pod to node 1's server completes \
         (node 1's policy allows `app=bench-prop`; probes every {} ms). {} did not connect within {:?}.\n",
        prop.ms.len() + prop.failed,
        PROBE_ATTEMPT.as_millis(),
        prop.failed,
        PROPAGATION_LIMIT
    );
    let _ = writeln!(o, "| metric | value | target |\n|---|---:|---|");
    let _ = writeln!(o, "| p50 | {:.1} ms | |", median(&prop.ms));
    let _ = writeln!(
        o,
        "| p99 | {p99:.1} ms | < 250 ms {} ({:.2}× the target) |",
        verdict(p99 < 250.0 && prop.failed == 0),
        p99 / 250.0
    );
    let _ = writeln!(o, "| max | {:.1} ms | |", percentile(&prop.ms, 100.0));
    let _ = writeln!(
        o,
        "| probes whose first SYN was dropped (needed > 1 attempt) | {} of {} | |",
        prop.retried,
        prop.ms.len()
    );
    let _ = writeln!(
        o,
        "| node 1's `cilium_ipcache` holds the IP with an identity (p50 / p99, polled every 1 ms via `GET /v1/map/cilium_ipcache`) | {:.1} / {:.1} ms ({} of {}; identity differs from the pod's: {}) | |",
        median(&prop.ipcache_ms),
        percentile(&prop.ipcache_ms, 99.0),
        prop.ipcache_ms.len(),
        prop.ms.len() + prop.failed,
        prop.wrong_identity
    );
    let _ = writeln!(
        o,
        "| CNI ADD on node 0 (p50 / p99) | {:.1} / {:.1} ms | (not a target) |\n",
        median(&prop.add_ms),
        percentile(&prop.add_ms, 99.0)
    );
    let _ = writeln!(
        o,
        "## Identity allocation against etcd (1 member, loopback)\n"
    );
    let _ = writeln!(
        o,
        "`ClusterAllocator::allocate` on {} distinct new label sets per case, each allocator with its own etcd client and session.\n",
        args.label_sets
    );
    let _ = writeln!(o, "| case | allocations/s |\n|---|---:|");
    let _ = writeln!(o, "| one allocator, sequential | {:.0} |", alloc.one);
    let _ = writeln!(
        o,
        "| two allocators, disjoint halves, concurrently | {:.0} |",
        alloc.two_disjoint
    );
    let _ = writeln!(
        o,
        "| two allocators, the same sets (opposite order), concurrently; distinct identities/s | {:.0} (both got the same numbers: {}) |",
        alloc.two_same, alloc.consistent
    );
    o
}

fn run(args: &Args) -> Result<()> {
    let machine = Machine::probe();
    eprintln!("starting a 2-node cluster with 1 etcd member");
    let cluster = Cluster::start(ClusterOptions {
        nodes: 2,
        etcd_members: 1,
    })?;
    let server = cluster.pod(1, "bench-server", &["k8s:app=bench-server"])?;
    let client = cluster.pod(0, "bench-client", &["k8s:app=bench-client"])?;
    let stranger = cluster.pod(0, "bench-stranger", &["k8s:app=bench-stranger"])?;
    for node in cluster.nodes() {
        let path = node.agent().temp_dir().join("bench-policy.yaml");
        std::fs::write(&path, POLICY)?;
        node.cli_ok(&["policy", "import", &path.to_string_lossy()])?;
    }
    let _servers = ServerSet::start(server.namespace())?;
    let seed = std::process::id().wrapping_mul(13);
    let plain = PlainVxlan::create(seed)?;
    let _plain_servers = ServerSet::start(&plain.pods[1])?;

    // Both paths work, and ours enforces: the stranger is denied.
    let connect = SocketAddr::from((server.ip(), CONNECT_PORT));
    if probe_until_connected(&client, connect)?.is_none() {
        bail!(
            "client cannot reach the server across nodes\n{}",
            cluster.describe()
        );
    }
    if measure::handshake(
        stranger.namespace(),
        server.ip(),
        CONNECT_PORT,
        Duration::from_millis(500),
    )? {
        bail!("the stranger reached the server: the policy is not enforced");
    }
    if !measure::handshake(
        &plain.pods[0],
        plain.pod_ips[1],
        CONNECT_PORT,
        Duration::from_secs(2),
    )? {
        bail!(
            "plain VXLAN: pod 0 cannot reach pod 1 at {}",
            plain.pod_ips[1]
        );
    }
    let dp = datapath_rounds(
        args,
        [
            (client.namespace(), server.ip()),
            (&plain.pods[0], plain.pod_ips[1]),
        ],
    )?;
    drop(_plain_servers);
    drop(plain);

    eprintln!("propagation over {} endpoints", args.endpoints);
    let prop = propagation(&cluster, server.ip(), args.endpoints)?;
    drop((_servers, stranger, client, server));
    drop(cluster);

    eprintln!("identity allocation: {} label sets", args.label_sets);
    let alloc = identity_allocation(args.label_sets)?;
    entry::publish(
        &report(args, &machine, &dp, &prop, &alloc),
        args.output.as_deref(),
    )
}

fn main() -> ExitCode {
    entry::main(parse_args, run)
}
