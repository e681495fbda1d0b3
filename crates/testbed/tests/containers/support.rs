//! Shared by the container runtime tests (docker.rs, podman.rs): the same
//! scenario through either runtime's CLI. `web` serves a page on port 80,
//! `frontend` and `intruder` fetch it with busybox `nc` from inside their
//! containers, over IPv4 and IPv6; a label policy lets the frontend in and
//! drops the intruder; removing the containers leaves nothing behind.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Output;
use std::time::Duration;

use anyhow::{ensure, Result};
use testbed::runtime::{Dockerd, Podman};
use testbed::{eventually, Agent, Monitor};

/// What web's page says.
pub const GREETING: &str = "hello from web";
/// How long the agent may take to realize an imported policy.
const REALIZE_TIMEOUT: Duration = Duration::from_secs(10);
/// An expected pass may need a retry while things settle.
const PASS_TIMEOUT: Duration = Duration::from_secs(10);

/// A runtime's CLI: `docker` against the test's dockerd, or `podman`.
pub trait Runtime {
    /// `docker` or `podman`, for messages.
    fn name(&self) -> &'static str;
    fn output(&self, args: &[&str]) -> Result<Output>;
    fn run_ok(&self, args: &[&str]) -> Result<String>;
}

impl Runtime for Dockerd {
    fn name(&self) -> &'static str {
        "docker"
    }
    fn output(&self, args: &[&str]) -> Result<Output> {
        Dockerd::output(self, args)
    }
    fn run_ok(&self, args: &[&str]) -> Result<String> {
        Dockerd::run_ok(self, args)
    }
}

impl Runtime for Podman {
    fn name(&self) -> &'static str {
        "podman"
    }
    fn output(&self, args: &[&str]) -> Result<Output> {
        Podman::output(self, args)
    }
    fn run_ok(&self, args: &[&str]) -> Result<String> {
        Podman::run_ok(self, args)
    }
}

/// A container as the agent sees it.
pub struct Attached {
    pub name: String,
    pub endpoint_id: u16,
    pub ip: Ipv4Addr,
    pub ip6: Ipv6Addr,
    pub host_ifname: String,
}

/// Both of the container's addresses are on its eth0, where the runtime
/// put it.
pub fn check_eth0(rt: &impl Runtime, name: &str, ip: Ipv4Addr, ip6: Ipv6Addr) -> Result<()> {
    let addrs = rt.run_ok(&["exec", name, "ip", "addr", "show", "dev", "eth0"])?;
    for ip in [IpAddr::from(ip), ip6.into()] {
        ensure!(
            addrs.contains(&format!("{ip}/")),
            "{name}: {ip} not in\n{addrs}"
        );
    }
    Ok(())
}

/// An HTTP GET to `ip:80` from inside `client` (busybox `nc`: the static
/// busybox's `wget` crashes in a bare image); true if the page came back.
fn fetch(rt: &impl Runtime, client: &Attached, ip: IpAddr) -> bool {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 80");
    rt.output(&["exec", &client.name, "sh", "-c", &script])
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(GREETING))
}

/// Over IPv4 and over IPv6.
pub fn reaches(rt: &impl Runtime, client: &Attached, server: &Attached) -> bool {
    [server.ip.into(), server.ip6.into()].into_iter().all(|ip| {
        eventually(PASS_TIMEOUT, Duration::from_millis(200), || {
            fetch(rt, client, ip)
        })
    })
}

/// Three attempts per family, none answered.
pub fn is_blocked(rt: &impl Runtime, client: &Attached, server: &Attached) -> bool {
    [server.ip.into(), server.ip6.into()]
        .into_iter()
        .all(|ip| (0..3).all(|_| !fetch(rt, client, ip)))
}

/// Under `web_policy` (web takes port 80 from app=frontend alone) the
/// frontend still reaches web and the intruder is dropped, with a `Policy
/// denied` drop at web.
pub fn policy_admits_frontend_and_drops_intruder(
    agent: &Agent,
    rt: &impl Runtime,
    web_policy: &str,
    [web, frontend, intruder]: [&Attached; 3],
) -> Result<()> {
    let mut drops = Monitor::start(agent, &["drop"])?;
    let revision = agent.client().policy_put(web_policy, false)?.revision;
    wait_for_revision(agent, web.endpoint_id, revision)?;

    ensure!(
        reaches(rt, frontend, web),
        "frontend (app=frontend) -> web:80 must pass under the policy"
    );
    ensure!(
        is_blocked(rt, intruder, web),
        "intruder (app=intruder) -> web:80 must be dropped"
    );
    let denial = drops.wait_for(
        |ev| {
            ev.reason_text == "Policy denied"
                && ev.endpoint == web.endpoint_id
                && ev.src_ip == intruder.ip.to_string()
                && ev.dst_port == 80
        },
        Duration::from_secs(3),
    );
    ensure!(
        denial.is_some(),
        "no `Policy denied` drop at web (endpoint {}) from intruder {}; drops seen: {:#?}",
        web.endpoint_id,
        intruder.ip,
        drops.seen()
    );
    Ok(())
}

fn wait_for_revision(agent: &Agent, endpoint: u16, revision: u64) -> Result<()> {
    let client = agent.client();
    let realized = eventually(REALIZE_TIMEOUT, Duration::from_millis(20), || {
        client
            .endpoint_get(&endpoint.to_string())
            .is_ok_and(|ep| ep.status.policy.realized.policy_revision >= revision)
    });
    ensure!(
        realized,
        "endpoint {endpoint} did not realize policy revision {revision} within {REALIZE_TIMEOUT:?}"
    );
    Ok(())
}

/// After `<runtime> rm`: no endpoint, no allocated address of either
/// family, no host veth and no host route remain.
pub fn assert_nothing_left(agent: &Agent, rt: &impl Runtime, removed: &[&Attached]) -> Result<()> {
    let client = agent.client();
    let endpoints = client.endpoint_list()?;
    ensure!(
        endpoints.is_empty(),
        "endpoints left after {} rm: {:?}",
        rt.name(),
        endpoints.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    let ipam = client.healthz()?.ipam;
    ensure!(ipam.ipv4.is_empty(), "IPs still allocated: {:?}", ipam.ipv4);
    ensure!(
        ipam.ipv6.is_empty(),
        "IPv6 addresses still allocated: {:?}",
        ipam.ipv6
    );
    for c in removed {
        ensure!(
            !link_exists(&c.host_ifname),
            "{}: host veth {} is still there",
            c.name,
            c.host_ifname
        );
        let routes = testbed::cmd::ip(&["route", "show", &format!("{}/32", c.ip)])?;
        ensure!(
            routes.trim().is_empty(),
            "{}: host route left: {routes}",
            c.name
        );
    }
    Ok(())
}

pub fn link_exists(name: &str) -> bool {
    testbed::cmd::ip(&["link", "show", "dev", name]).is_ok()
}
