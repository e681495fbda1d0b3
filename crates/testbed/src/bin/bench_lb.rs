//! `cilium-bench-lb`: service load balancing at scale, our eBPF LB next to
//! kube-proxy-style iptables DNAT chains holding the same S services, in
//! one run with interleaved rounds (see bench/lb/README.md and the method
//! section of the report it writes).
//!
//! Everything it creates (agent, pods, veths, cgroup, `CBLB-*` chains,
//! ip_forward) is released by Drop guards, also on Ctrl-C and on failure;
//! bench/lb/run.sh sweeps up after a SIGKILL.

#[path = "bench_lb/catalog.rs"]
mod catalog;
#[path = "bench_lb/kube_proxy.rs"]
mod kube_proxy;
#[path = "bench_lb/load.rs"]
mod load;
#[path = "bench_lb/ours.rs"]
mod ours;
#[path = "bench_lb/report.rs"]
mod report;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testbed::bench::entry::{self, step};
use testbed::bench::{machine, signals, Flag, Flags, Machine, PlainPod, SysctlOverride};
use testbed::{Agent, AgentOptions, Pod};

use catalog::{service, ServiceDef, SERVER_PORTS, SERVICE_PORT};
use kube_proxy::KubeProxy;
use report::{Header, SizeResult, Variant, VARIANTS};

/// The agent's pod range, away from the testbed's and the datapath bench's.
const AGENT_RANGE: &str = "10.192.0.0/24";
const PLAIN_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 193, 0, 1);
const PLAIN_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 193, 0, 10);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 193, 0, 20);
const CGROUP2: &str = "/sys/fs/cgroup/unified";
/// Service ids are 16-bit (the reverse-NAT index): the largest S possible.
const MAX_SIZE: u32 = 65_000;

struct Args {
    sizes: Vec<u16>,
    rounds: usize,
    seconds: f64,
    add_reps: usize,
    /// Sizes measured for our LB only (iptables-restore is too slow there).
    ebpf_only: Vec<u16>,
    output: Option<PathBuf>,
}

const USAGE: &str = "usage: cilium-bench-lb [--sizes 10,1000,10000] [--rounds 5] [--seconds 1.5] \
                     [--add-reps 25] [--ebpf-only-sizes 60000] [--output FILE.md]";

impl Args {
    fn parse(argv: impl Iterator<Item = String>) -> Result<Args> {
        let mut args = Args {
            sizes: vec![10, 1_000, 10_000],
            rounds: 5,
            seconds: 1.5,
            add_reps: 25,
            ebpf_only: vec![60_000],
            output: None,
        };
        let mut flags = Flags::new(argv, USAGE);
        while let Some(flag) = flags.next_flag()? {
            match flag.name.as_str() {
                "--sizes" => {
                    let mut sizes = sizes(&flag)?;
                    sizes.sort_unstable();
                    sizes.dedup();
                    args.sizes = sizes;
                }
                "--ebpf-only-sizes" => args.ebpf_only.extend(sizes(&flag)?),
                "--rounds" => args.rounds = flag.number()?,
                "--seconds" => args.seconds = flag.number()?,
                "--add-reps" => args.add_reps = flag.number()?,
                "--output" => args.output = Some(flag.path()),
                _ => return Err(flag.unknown()),
            }
        }
        args.sizes.extend(args.ebpf_only.iter().copied());
        args.sizes.sort_unstable();
        args.sizes.dedup();
        if args.rounds == 0 || args.add_reps == 0 || args.seconds <= 0.0 {
            bail!("--rounds, --add-reps and --seconds must be positive");
        }
        Ok(args)
    }
}

/// A comma-separated list of service counts (`10,1_000`), each within
/// 1..=MAX_SIZE: service ids and reverse-NAT indexes are 16-bit.
fn sizes(flag: &Flag) -> Result<Vec<u16>> {
    flag.value
        .split(',')
        .map(|s| {
            let n: u32 = s
                .trim()
                .replace('_', "")
                .parse()
                .with_context(|| format!("{}: {s:?} is not a number", flag.name))?;
            if n == 0 || n > MAX_SIZE {
                bail!("{}: {n} is outside 1..={MAX_SIZE} (service ids and reverse-NAT indexes are 16-bit)", flag.name);
            }
            Ok(n as u16)
        })
        .collect()
}

fn main() -> ExitCode {
    entry::main(Args::parse, run)
}

/// The socket LB's cgroup: a child nobody is in, so the clients (in the
/// root cgroup) go through the per-packet datapath.
struct Cgroup(PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let machine = Machine::probe().facts(&[machine::tool_version("iptables", &["--version"])]);
    let pid = std::process::id();
    let cgroup = Cgroup(PathBuf::from(format!("{CGROUP2}/cilium-bench-lb-{pid}")));
    std::fs::create_dir(&cgroup.0)
        .with_context(|| format!("cannot create {}", cgroup.0.display()))?;

    step(started, "starting cilium-agent and pods");
    let agent = Agent::start_with(AgentOptions {
        ipv4_range: Some(AGENT_RANGE.into()),
        extra_args: vec!["--cgroup-root".into(), cgroup.0.display().to_string()],
        paths: None,
    })?;
    let _forwarding = SysctlOverride::set("net.ipv4.ip_forward", "1")?;
    let tag = format!("{:05x}", pid & 0xfffff);
    let server = PlainPod::create(
        &format!("cblb-{pid}-server"),
        &format!("cbls{tag}"),
        SERVER,
        PLAIN_GATEWAY,
    )?;
    let plain_client = PlainPod::create(
        &format!("cblb-{pid}-client"),
        &format!("cblc{tag}"),
        PLAIN_CLIENT,
        PLAIN_GATEWAY,
    )?;
    // Many short connections: the whole port range, and no waiting.
    for ns in [server.namespace(), plain_client.namespace()] {
        ns.sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
    }
    let cilium_client = Pod::create(&agent, "bench-lb-client", &["k8s:app=bench-lb-client"])?;
    cilium_client
        .namespace()
        .sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
    let _server = load::Server::start(server.namespace(), &SERVER_PORTS)?;
    let mut iptables = KubeProxy::new();
    let client = agent.client();

    let mut results = Vec::new();
    let mut ours_cumulative = Duration::ZERO;
    let mut programmed: u16 = 0;
    for &size in &args.sizes {
        signals::check()?;
        let mut r = SizeResult {
            size,
            ..Default::default()
        };
        step(started, &format!("S={size}: programming our services"));
        if programmed > 0 {
            // The previous measured service becomes an ordinary one.
            let s = service(programmed, size, SERVER);
            client.service_put(s.id, &ours::spec(&s))?;
        }
        let new: Vec<ServiceDef> = (programmed + 1..=size)
            .map(|id| service(id, size, SERVER))
            .collect();
        ours_cumulative += ours::put_all(&client, &new)?;
        programmed = size;
        r.ours_program = ours_cumulative;

        let with_iptables = !args.ebpf_only.contains(&size);
        let all: Vec<ServiceDef> = (1..=size).map(|id| service(id, size, SERVER)).collect();
        if with_iptables {
            step(started, &format!("S={size}: iptables-restore"));
            r.iptables_program = iptables.load(&all)?;
            r.iptables_rules = iptables.rules();
        }
        let variants: Vec<Variant> = VARIANTS
            .into_iter()
            .filter(|v| with_iptables || *v != Variant::Iptables)
            .collect();

        let vip = SocketAddrV4::new(all.last().expect("size >= 1").vip, SERVICE_PORT);
        let direct = SocketAddrV4::new(SERVER, SERVER_PORTS[0]);
        let measure = |v: Variant, seconds: f64| -> Result<load::Run> {
            let d = Duration::from_secs_f64(seconds);
            match v {
                Variant::Ebpf => load::run(cilium_client.namespace(), vip, d),
                Variant::DirectCilium => load::run(cilium_client.namespace(), direct, d),
                Variant::DirectPlain => load::run(plain_client.namespace(), direct, d),
                Variant::Iptables => {
                    let _jump = iptables.engage(plain_client.host_ifname())?;
                    load::run(plain_client.namespace(), vip, d)
                }
            }
        };
        step(started, &format!("S={size}: warm-up and check"));
        for &v in &variants {
            let run = measure(v, 0.3)?;
            if run.ok == 0 {
                bail!(
                    "S={size}: {} does not work ({} failed connections)",
                    v.name(),
                    run.errors
                );
            }
        }
        for round in 0..args.rounds {
            step(
                started,
                &format!("S={size}: round {}/{}", round + 1, args.rounds),
            );
            let mut order = variants.clone();
            order.rotate_left(round % variants.len());
            for v in order {
                signals::check()?;
                let run = measure(v, args.seconds)?;
                r.runs.push((v, run));
            }
        }
        r.iptables_last_service_packets = if with_iptables {
            iptables.service_packets(size)?
        } else {
            1
        };
        if r.iptables_last_service_packets == 0 {
            bail!(
                "S={size}: the iptables variant's traffic never reached the last service's chain"
            );
        }

        step(started, &format!("S={size}: adding one more service"));
        for n in 0..args.add_reps as u16 {
            signals::check()?;
            r.ours_add_one
                .push(ours::add_one(&client, &catalog::extra(size, n))?);
        }
        for n in 0..if with_iptables {
            args.add_reps.min(3) as u16
        } else {
            0
        } {
            signals::check()?;
            r.iptables_add_commands
                .push(iptables.add_one_by_commands(&catalog::extra(size, n))?);
            r.iptables_add_restore
                .push(iptables.add_one_by_restore(&catalog::extra(size, n))?);
        }
        eprintln!(
            "S={size}: eBPF {:.0} conn/s, iptables {:.0} conn/s; add one: ours {:?}",
            r.rate(Variant::Ebpf),
            r.rate(Variant::Iptables),
            report::median(&r.ours_add_one),
        );
        results.push(r);
    }

    let header = Header {
        machine,
        rounds: args.rounds,
        seconds: args.seconds,
        total: started.elapsed(),
        notes: vec![
            "iptables-restore (nf_tables backend) grows faster than linearly with the number of \
             chains (about 0.3 s at 1,000 services, 70 s at 10,000 on the reference machine), so \
             sizes beyond 10,000 are run for our LB only (`--ebpf-only-sizes`)."
                .into(),
            "S = 100,000 does not fit: service ids (and reverse-NAT indexes) are 16-bit, as in \
             Cilium's API, so one agent holds at most 65,535 services; `--sizes` accepts up to 65,000."
                .into(),
            format!(
                "The agent ran with its defaults (conntrack GC every 30 s, off the API's path) and its \
                 socket LB attached to an empty cgroup ({}), so both clients' connections are \
                 translated per packet.",
                cgroup.0.display()
            ),
        ],
    };
    entry::publish(&report::render(&header, &results), args.output.as_deref())
}
