//! `cilium-bench-cni-add`: how long a container waits, from the runtime's
//! CNI `ADD` call to its first packet through an allowing policy. Each
//! iteration makes a fresh network namespace, runs `cilium-cni ADD` on it
//! (the binary, as a runtime would), then connects to a server pod until
//! the connection succeeds; then `DEL`. Reports median and p99 over the
//! iterations (default 50), for ADD alone and for ADD → first allowed
//! connection.
//!
//! Usage: `cilium-bench-cni-add [--iterations N] [--output FILE]` (root;
//! cilium-agent, cilium and cilium-cni built next to it, or named by
//! `$CILIUM_AGENT_BIN`, `$CILIUM_BIN`, `$CILIUM_CNI_BIN`).

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use testbed::bench::stats::{min_max, nearest_rank};
use testbed::bench::Flags;
use testbed::runtime::CNI_BIN_ENV;
use testbed::{find_binary, netns, unique, Agent, AgentOptions, NetNs, Pod};

const PORT: u16 = 8080;
/// How long one connection attempt may take before it is retried (a
/// dropped SYN would otherwise wait for the kernel's 1 s retransmit).
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(100);
/// Give up on one iteration after this long.
const ITERATION_TIMEOUT: Duration = Duration::from_secs(10);

const POLICY: &str = r#"[{
  "endpointSelector": {"matchLabels": {"app": "server"}},
  "ingress": [{
    "fromEndpoints": [{"matchLabels": {"app": "client"}}],
    "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]
  }]
}]"#;

struct Args {
    iterations: usize,
    output: Option<PathBuf>,
}

const USAGE: &str = "cilium-bench-cni-add [--iterations N] [--output FILE]";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        iterations: 50,
        output: None,
    };
    let mut flags = Flags::new(std::env::args().skip(1), USAGE);
    while let Some(flag) = flags.next_flag()? {
        match flag.name.as_str() {
            "--iterations" => args.iterations = flag.number()?,
            "--output" => args.output = Some(flag.path()),
            _ => return Err(flag.unknown()),
        }
    }
    ensure!(args.iterations > 0, "--iterations must be at least 1");
    Ok(args)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cilium-bench-cni-add failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let cni = find_binary("cilium-cni", CNI_BIN_ENV)?;
    let agent = Agent::start_with(AgentOptions::default().with_unique_range())?;
    let server = Pod::create(&agent, "bench-cni-server", &["container:app=server"])?;
    let _serving = server.serve_tcp(PORT)?;
    let revision = agent.client().policy_put(POLICY, false)?.revision;
    server.wait_for_policy_revision(&agent, revision, Duration::from_secs(10))?;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "bench",
        "type": "cilium-cni",
        "cilium-socket": agent.socket().display().to_string(),
        "args": {"cni": {"labels": [{"key": "app", "value": "client"}]}},
    })
    .to_string();

    let mut add_only = Vec::new();
    let mut to_first_packet = Vec::new();
    for i in 0..args.iterations {
        let (pid, n) = unique::next_pair();
        let ns = NetNs::create(&unique::netns_name(pid, n, "cni-bench"))?;
        let path = ns.path().display().to_string();
        let id = format!("bench-{pid}-{i}");
        let start = Instant::now();
        cni_call(&cni, "ADD", &id, &path, &conf)?;
        let added = start.elapsed();
        let first = first_connection(&ns, server.ip(), start)
            .with_context(|| format!("iteration {i}: no allowed connection"))?;
        cni_call(&cni, "DEL", &id, &path, &conf)?;
        add_only.push(added);
        to_first_packet.push(first);
    }

    let report = format!(
        "CNI ADD -> first allowed packet, {} iterations (fresh netns each, policy \
         allows app=client -> app=server:8080)\n\
         | measure | median | p99 | min | max |\n|---|---|---|---|---|\n{}\n{}\n",
        args.iterations,
        row("cilium-cni ADD (process exit)", &add_only),
        row("ADD start -> first allowed TCP connect", &to_first_packet),
    );
    print!("{report}");
    if let Some(file) = args.output {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .and_then(|mut f| f.write_all(report.as_bytes()))
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(())
}

fn cni_call(cni: &std::path::Path, command: &str, id: &str, netns: &str, conf: &str) -> Result<()> {
    let mut child = Command::new(cni)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/opt/cni/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", cni.display()))?;
    child
        .stdin
        .take()
        .context("no stdin pipe")?
        .write_all(conf.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "cilium-cni {command} failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

/// Time from `start` until a TCP connection from `ns` to `server:PORT`
/// succeeds.
fn first_connection(ns: &NetNs, server: Ipv4Addr, start: Instant) -> Result<Duration> {
    let addr = SocketAddr::from((server, PORT));
    loop {
        let connected = netns::run_in(&ns.path(), || {
            TcpStream::connect_timeout(&addr, ATTEMPT_TIMEOUT).is_ok()
        })?;
        if connected {
            return Ok(start.elapsed());
        }
        ensure!(
            start.elapsed() < ITERATION_TIMEOUT,
            "no connection to {addr} within {ITERATION_TIMEOUT:?}"
        );
    }
}

/// A table row: median and p99 (nearest rank), min and max of `samples`.
fn row(name: &str, samples: &[Duration]) -> String {
    let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    let (min, max) = min_max(&ms);
    format!(
        "| {name} | {:.1} ms | {:.1} ms | {min:.1} ms | {max:.1} ms |",
        nearest_rank(&ms, 0.5),
        nearest_rank(&ms, 0.99),
    )
}
