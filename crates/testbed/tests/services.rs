//! Acceptance of the service load-balancing issue: on one node, a real
//! cilium-agent balances connections to service VIPs over backend pods in
//! the kernel — per packet for pods, at connect() for host processes.
//!
//! Cast: backend pods that answer every request with their own name (so
//! the test knows which backend a connection reached) and a `client` pod.
//! The agent's socket LB is attached to a cgroup of the test's own, so the
//! pod clients (threads of this process, in the root cgroup) exercise the
//! per-packet path and only the spawned host process the socket path.
//!
//! Needs root. Each test starts its own agent on private paths, its own
//! /24 and cgroup.

#[path = "services/client.rs"]
mod client;
#[path = "services/node.rs"]
mod node;
#[path = "services/servers.rs"]
mod servers;
#[path = "services/stats.rs"]
mod stats;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use api::{BackendAddress, FrontendAddress, ServiceSpec};

use client::{one_conn_per_backend, tcp_attempts, tcp_spread, udp_spread, TIMEOUT};
use node::{LbNode, DENY_CLIENT, TCP_PORT, UDP_PORT};
use stats::check_split;

const ABC: [&str; 3] = ["a", "b", "c"];
const EVEN: [f64; 3] = [1.0, 1.0, 1.0];

fn vip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 96, 0, last)
}

#[test]
fn tcp_connections_spread_stick_and_see_the_vip() -> Result<()> {
    let node = LbNode::start(&ABC)?;
    let out = node.service(1, "10.96.0.1:80", &ABC, TCP_PORT, &[])?;
    ensure!(out.contains("Creating new service with id '1'"), "{out}");
    let list = node.agent.cli_ok(&["service", "list"])?;
    ensure!(
        list.contains("10.96.0.1:80/TCP") && list.contains("3 => "),
        "service list: {list}"
    );

    // 300 connections, three rounds each, each checking getpeername().
    let counts = tcp_spread(&node.client, vip(1), 80, 300, 3)?;
    let chi2 = check_split(&counts, &ABC, &EVEN).map_err(anyhow::Error::msg)?;
    eprintln!("TCP split {counts:?}, chi-square {chi2:.2}");
    Ok(())
}

#[test]
fn udp_datagrams_spread_stick_and_come_from_the_vip() -> Result<()> {
    let node = LbNode::start(&ABC)?;
    node.service(2, "10.96.0.2:53", &ABC, UDP_PORT, &["--protocol", "udp"])?;
    let counts = udp_spread(&node.client, vip(2), 53, 150, 3)?;
    let chi2 = check_split(&counts, &ABC, &EVEN).map_err(anyhow::Error::msg)?;
    eprintln!("UDP split {counts:?}, chi-square {chi2:.2}");
    Ok(())
}

#[test]
fn policy_applies_to_the_chosen_backend() -> Result<()> {
    let node = LbNode::start(&["ok", "denied"])?;
    node.service(3, "10.96.0.3:80", &["ok", "denied"], TCP_PORT, &[])?;
    node.service(4, "10.96.0.4:80", &["denied"], TCP_PORT, &[])?;
    // Before the policy both backends answer through the VIP.
    one_conn_per_backend(&node.client, vip(3), 80, &["ok", "denied"], 60)?;

    node.agent
        .import_policy(DENY_CLIENT, &[node.backend("denied")])?;
    let accepted_before = node.accepted("denied");

    // Half the new connections pick the denied backend and get no answer;
    // the other half reach `ok`. 20 tries all landing on `ok`: p = 1e-6.
    let timeout = Duration::from_millis(500);
    let (answered, failed) = tcp_attempts(&node.client, vip(3), 80, 20, timeout);
    ensure!(
        answered.keys().all(|b| b == "ok"),
        "only `ok` may answer: {answered:?}"
    );
    ensure!(
        failed > 0 && answered.get("ok").copied().unwrap_or(0) > 0,
        "expected failures exactly for the denied backend: answered {answered:?}, failed {failed}"
    );
    // A service whose only backend is denied: deterministic.
    let (answered, failed) = tcp_attempts(&node.client, vip(4), 80, 3, timeout);
    ensure!(
        answered.is_empty() && failed == 3,
        "{answered:?}, {failed} failed"
    );
    ensure!(
        node.accepted("denied") == accepted_before,
        "the denied backend accepted a connection"
    );
    Ok(())
}

#[test]
fn removed_backend_gets_no_new_connections_others_continue() -> Result<()> {
    let node = LbNode::start(&ABC)?;
    node.service(5, "10.96.0.5:80", &ABC, TCP_PORT, &[])?;
    let mut held = one_conn_per_backend(&node.client, vip(5), 80, &ABC, 100)?;

    let out = node.service(5, "10.96.0.5:80", &["a", "b"], TCP_PORT, &[])?;
    ensure!(
        out.contains("Updating existing service with id '5'"),
        "{out}"
    );
    let lb = node.agent.cli_ok(&["bpf", "lb", "list"])?;
    let c_addr = format!("{}:{TCP_PORT}", node.backend("c").ip());
    ensure!(!lb.contains(&c_addr), "c is still in the maps:\n{lb}");

    for conn in held.iter_mut().take(2) {
        for round in 0..3 {
            let name = conn
                .ask()
                .with_context(|| format!("held connection to {}, round {round}", conn.backend))?;
            ensure!(name == conn.backend, "{} became {name}", conn.backend);
        }
    }
    let (answered, failed) = tcp_attempts(&node.client, vip(5), 80, 100, TIMEOUT);
    ensure!(failed == 0, "{failed} new connections failed: {answered:?}");
    ensure!(
        !answered.contains_key("c"),
        "removed backend c got new connections: {answered:?}"
    );
    let to_c = held[2].ask();
    eprintln!("the held connection to removed backend c now gives {to_c:?}");
    Ok(())
}

#[test]
fn weighted_backends_get_their_share() -> Result<()> {
    let node = LbNode::start(&["a", "b"])?;
    node.service(
        6,
        "10.96.0.6:80",
        &["a", "b"],
        TCP_PORT,
        &["--backend-weights", "1,3"],
    )?;
    let lb = node.agent.cli_ok(&["bpf", "lb", "list"])?;
    ensure!(
        lb.contains("(4)") && !lb.contains("(5)"),
        "4 slots expected:\n{lb}"
    );
    let counts = tcp_spread(&node.client, vip(6), 80, 200, 1)?;
    let chi2 = check_split(&counts, &["a", "b"], &[1.0, 3.0]).map_err(anyhow::Error::msg)?;
    eprintln!("weighted 1:3 split {counts:?}, chi-square {chi2:.2}");
    Ok(())
}

#[test]
fn maintenance_backend_finishes_its_connections() -> Result<()> {
    let node = LbNode::start(&["a", "b"])?;
    node.service(7, "10.96.0.7:80", &["a", "b"], TCP_PORT, &[])?;
    let mut held = one_conn_per_backend(&node.client, vip(7), 80, &["a", "b"], 60)?;
    node.service(
        7,
        "10.96.0.7:80",
        &["a", "b"],
        TCP_PORT,
        &["--states", "maintenance,active"],
    )?;
    let list = node.agent.cli_ok(&["service", "list"])?;
    ensure!(list.contains("(maintenance)"), "{list}");

    let (answered, failed) = tcp_attempts(&node.client, vip(7), 80, 50, TIMEOUT);
    ensure!(
        failed == 0 && answered.keys().all(|b| b == "b"),
        "new connections must all go to b: {answered:?}, {failed} failed"
    );
    for round in 0..3 {
        let name = held[0].ask().with_context(|| format!("round {round}"))?;
        ensure!(name == "a", "the connection to a now reaches {name}");
    }
    Ok(())
}

/// Set in the environment of the spawned host process.
const SOCKLB_ENV: &str = "CILIUM_TEST_SOCKLB_TARGETS";

#[test]
fn socket_lb_points_host_connects_at_a_backend() -> Result<()> {
    let node = LbNode::start(&ABC)?;
    node.service(8, "10.96.0.8:80", &ABC, TCP_PORT, &[])?;
    node.service(9, "10.96.0.8:53", &ABC, UDP_PORT, &["--protocol", "udp"])?;

    // This test binary again, moved into the agent's cgroup before exec.
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        "socket_lb_client_process",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(SOCKLB_ENV, "10.96.0.8:80,10.96.0.8:53");
    node.cgroup.join_on_exec(&mut cmd)?;
    let out = cmd.output().context("cannot run the host client")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "host client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        // libtest's "test NAME ... " may precede the first line.
        .filter_map(|l| l.split_once("SOCKLB ").map(|(_, rest)| rest))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let cgroup_name = node.cgroup.path().file_name().unwrap().to_string_lossy();
    ensure!(
        lines
            .iter()
            .any(|l| l[0] == "cgroup" && l[1].ends_with(&*cgroup_name)),
        "the client was not in {cgroup_name}: {stdout}"
    );
    for (kind, want) in [("tcp", "10.96.0.8:80"), ("udp", "10.96.0.8:53")] {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for l in lines.iter().filter(|l| l[0] == kind) {
            ensure!(
                l[2] == want,
                "{kind}: the peer is {}, not the VIP {want}",
                l[2]
            );
            ensure!(ABC.contains(&l[1]), "{kind}: answered by {}", l[1]);
            *counts.entry(l[1]).or_default() += 1;
        }
        ensure!(
            counts.values().sum::<usize>() == 30 && counts.len() >= 2,
            "{kind}: 30 answers from at least two backends expected: {counts:?}"
        );
        eprintln!("socket LB {kind} split {counts:?}");
    }
    ensure!(
        node.cgroup.procs().is_empty(),
        "the host client is still running"
    );
    Ok(())
}

/// The host process of `socket_lb_points_host_connects_at_a_backend`; does
/// nothing unless that test started it.
#[test]
#[ignore = "run by socket_lb_points_host_connects_at_a_backend"]
fn socket_lb_client_process() -> Result<()> {
    let Ok(targets) = std::env::var(SOCKLB_ENV) else {
        return Ok(());
    };
    let (tcp, udp) = targets.split_once(',').context("TCP,UDP")?;
    let (tcp, udp): (SocketAddr, SocketAddr) = (tcp.parse()?, udp.parse()?);
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")?;
    let v2 = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("?");
    println!("SOCKLB cgroup {v2}");
    for _ in 0..30 {
        let stream = std::net::TcpStream::connect_timeout(&tcp, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let peer = stream.peer_addr()?;
        let mut reader = std::io::BufReader::new(stream);
        std::io::Write::write_all(reader.get_mut(), b"who\n")?;
        let mut name = String::new();
        std::io::BufRead::read_line(&mut reader, &mut name)?;
        println!("SOCKLB tcp {} {peer}", name.trim());
    }
    for _ in 0..30 {
        let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.set_read_timeout(Some(TIMEOUT))?;
        let (name, from) = client::udp_ask(&socket, udp)?;
        println!("SOCKLB udp {name} {from}");
    }
    Ok(())
}

#[test]
fn bad_input_is_refused_and_changes_nothing() -> Result<()> {
    let node = LbNode::start(&["a"])?;
    node.service(1, "10.96.0.9:80", &["a"], TCP_PORT, &[])?;
    let before = node.lb_state()?;
    let a = format!("{}:{TCP_PORT}", node.backend("a").ip());
    let cases: [(&[&str], &str); 7] = [
        (
            &[
                "--id",
                "2",
                "--frontend",
                "10.96.0.10:80",
                "--backends",
                &a,
                "--protocol",
                "sctp",
            ],
            "unknown protocol",
        ),
        (
            &["--id", "2", "--frontend", "10.96.0.10:80"],
            "at least one backend",
        ),
        (
            &["--id", "1", "--frontend", "10.96.0.10:80", "--backends", &a],
            "already registered to frontend 10.96.0.9:80",
        ),
        (
            &["--id", "2", "--frontend", "10.96.0.9:80", "--backends", &a],
            "already belongs to service 1",
        ),
        (
            &["--id", "2", "--frontend", "10.96.0:80", "--backends", &a],
            "\"10.96.0\" is not an IP address",
        ),
        (
            &[
                "--id",
                "2",
                "--frontend",
                "10.96.0.10:80",
                "--backends",
                "10.0.0.1:99999",
            ],
            "port \"99999\"",
        ),
        (
            &[
                "--id",
                "2",
                "--frontend",
                "10.96.0.10:80",
                "--backends",
                &a,
                "--states",
                "draining",
            ],
            "draining",
        ),
    ];
    for (args, want) in cases {
        let mut argv = vec!["service", "update"];
        argv.extend_from_slice(args);
        let out = node.agent.cli(&argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.code() == Some(1) && stderr.contains(want),
            "`cilium {}`: exit {:?}, stderr {stderr:?} should mention {want:?}",
            argv.join(" "),
            out.status.code()
        );
        ensure!(
            node.lb_state()? == before,
            "`cilium {}` changed the services",
            argv.join(" ")
        );
    }

    // The agent's own answer to a malformed address the CLI would catch.
    let bad = ServiceSpec {
        frontend_address: FrontendAddress {
            ip: "10.96.0.1".into(),
            port: 80,
            protocol: "TCP".into(),
        },
        backend_addresses: vec![BackendAddress {
            ip: "10.0.0.300".into(),
            port: 80,
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = node.agent.client().service_put(3, &bad).unwrap_err();
    ensure!(
        err.status() == Some(400) && err.to_string().contains("backend-addresses[0].ip"),
        "{err}"
    );
    ensure!(
        node.lb_state()? == before,
        "a refused PUT changed the services"
    );
    Ok(())
}

#[test]
fn services_survive_an_agent_crash() -> Result<()> {
    let mut node = LbNode::start(&ABC)?;
    node.service(10, "10.96.0.11:80", &ABC, TCP_PORT, &[])?;
    node.service(11, "10.96.0.11:53", &ABC, UDP_PORT, &["--protocol", "udp"])?;
    let mut held = client::connect(&node.client, vip(11), 80, TIMEOUT)?;
    let before = node.lb_state()?;

    node.agent.kill();
    // The kernel keeps balancing while no agent runs.
    let name = held
        .ask()
        .context("held connection while the agent is down")?;
    ensure!(name == held.backend, "{} became {name}", held.backend);
    node.agent.start_again()?;

    ensure!(
        node.lb_state()? == before,
        "services changed across the restart"
    );
    let name = held.ask().context("held connection after the restart")?;
    ensure!(name == held.backend, "{} became {name}", held.backend);
    let counts = tcp_spread(&node.client, vip(11), 80, 150, 1)?;
    check_split(&counts, &ABC, &EVEN).map_err(anyhow::Error::msg)?;
    let counts = udp_spread(&node.client, vip(11), 53, 60, 1)?;
    ensure!(counts.len() == 3, "UDP after the restart: {counts:?}");
    Ok(())
}
