//! IPv6 services (issue 18) on one node with a real agent: an IPv6
//! ClusterIP balanced over dual-stack backend pods, per packet (agent with
//! `--enable-socket-lb false`) and at connect()/sendmsg() (the socket LB,
//! on by default). The clients are real: curl -6 for TCP, and a process of
//! this test for UDP, both run in the client pod's namespace from inside a
//! cgroup of the test's own, where the agent attaches its socket LB. Both
//! check that the peer they see is the frontend; backends answer with
//! their names, so the test knows which one a client reached. An IPv4
//! ClusterIP reached from AF_INET6 sockets as `::ffff:a.b.c.d` is balanced
//! by the socket LB too.
//!
//! Needs root. Each test starts its own agent on private paths.

#[path = "services/node.rs"]
#[allow(dead_code)]
mod node;
#[path = "services/servers.rs"]
#[allow(dead_code)]
mod servers;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use testbed::{Agent, AgentOptions, HttpServer, Pod};

use node::{TestCgroup, DENY_CLIENT};

const VIP: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 1);
const HTTP_PORT: u16 = 8080;
const UDP_PORT: u16 = 5353;
/// Set in the environment of the UDP client process: netns path, target,
/// datagram count.
const UDP_CLIENT_ENV: &str = "CILIUM_TEST_UDP6_CLIENT";

/// UDP on `[::]:port` in a pod, answering every datagram with the pod's
/// name. Stops on drop.
struct UdpNames {
    stop: Arc<AtomicBool>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl UdpNames {
    fn start(pod: &Pod, port: u16) -> Result<UdpNames> {
        let socket = pod
            .namespace()
            .run(move || UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port)))??;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let name = pod.name().to_string();
        let worker = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = socket.recv_from(&mut buf) {
                        let _ = socket.send_to(name.as_bytes(), from);
                    }
                }
            })
        };
        Ok(UdpNames {
            stop,
            worker: Some(worker),
        })
    }
}

impl Drop for UdpNames {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Fields drop in order: servers, pods, agent, then the cgroup.
struct Scene {
    _http: Vec<HttpServer>,
    _udp: Vec<UdpNames>,
    backends: Vec<Pod>,
    client: Pod,
    agent: Agent,
    cgroup: TestCgroup,
}

impl Scene {
    /// Dual-stack backend pods named `names` (app=<name>) serving their
    /// names over HTTP 8080 and UDP 5353, and a dual-stack `client`.
    fn start(names: &[&str], socket_lb: bool) -> Result<Scene> {
        let cgroup = TestCgroup::create()?;
        let mut extra_args = vec!["--cgroup-root".into(), cgroup.path().display().to_string()];
        if !socket_lb {
            extra_args.extend(["--enable-socket-lb".into(), "false".into()]);
        }
        let agent = Agent::start_with(
            AgentOptions {
                extra_args,
                ..Default::default()
            }
            .with_unique_range(),
        )?;
        let (mut backends, mut http, mut udp) = (Vec::new(), Vec::new(), Vec::new());
        for name in names {
            let pod = Pod::create_dual_stack(&agent, name, &[&format!("k8s:app={name}")])?;
            http.push(pod.serve_http(HTTP_PORT)?);
            udp.push(UdpNames::start(&pod, UDP_PORT)?);
            backends.push(pod);
        }
        let client = Pod::create_dual_stack(&agent, "client", &["k8s:app=client"])?;
        Ok(Scene {
            _http: http,
            _udp: udp,
            backends,
            client,
            agent,
            cgroup,
        })
    }

    fn ip6(pod: &Pod) -> Result<Ipv6Addr> {
        pod.ip6()
            .with_context(|| format!("pod {} has no IPv6 address", pod.name()))
    }

    /// `cilium service update` for `[VIP]:port` over the named backends'
    /// IPv6 addresses.
    fn service(
        &self,
        id: u16,
        port: u16,
        names: &[&str],
        to_port: u16,
        extra: &[&str],
    ) -> Result<String> {
        self.service_at(id, VIP.into(), port, names, to_port, extra)
    }

    /// `cilium service update` for `frontend:port` over the named backends'
    /// addresses of the frontend's family.
    fn service_at(
        &self,
        id: u16,
        frontend: IpAddr,
        port: u16,
        names: &[&str],
        to_port: u16,
        extra: &[&str],
    ) -> Result<String> {
        let mut backends = Vec::new();
        for name in names {
            let pod = self
                .backends
                .iter()
                .find(|p| p.name() == *name)
                .context("no such backend")?;
            let ip = match frontend {
                IpAddr::V4(_) => pod.ip().into(),
                IpAddr::V6(_) => Self::ip6(pod)?.into(),
            };
            backends.push(SocketAddr::new(ip, to_port).to_string());
        }
        let (id, frontend) = (id.to_string(), SocketAddr::new(frontend, port).to_string());
        let backends = backends.join(",");
        let mut args = vec![
            "service",
            "update",
            "--id",
            &id,
            "--frontend",
            &frontend,
            "--backends",
            &backends,
        ];
        args.extend_from_slice(extra);
        self.agent.cli_ok(&args)
    }

    /// A command run in the client pod's namespace from inside the test's
    /// cgroup (where the socket LB is attached, when on).
    fn client_command(&self, program: &str, args: &[&str]) -> Result<Command> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!(
            "--net={}",
            self.client.namespace().path().display()
        ))
        .arg("--")
        .arg(program)
        .args(args);
        self.cgroup.join_on_exec(&mut cmd)?;
        Ok(cmd)
    }

    /// `curl -6 http://[FRONTEND]:80/` from the client: the answering
    /// backend and the peer address curl's socket reports.
    fn curl(&self, frontend: Ipv6Addr, timeout: &str) -> Result<(String, String)> {
        let url = format!("http://[{frontend}]:80/");
        let out = self
            .client_command(
                "curl",
                &[
                    "-6",
                    "-s",
                    "--max-time",
                    timeout,
                    "-w",
                    "\n%{remote_ip}",
                    &url,
                ],
            )?
            .output()
            .context("running curl")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!("curl {url} failed ({}): {text}", out.status);
        }
        let (body, peer) = text.rsplit_once('\n').context("curl output")?;
        let backend = body
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        Ok((backend, peer.trim().to_string()))
    }

    /// `n` curls to `frontend`; backends per answer. Fails unless each saw
    /// the frontend.
    fn curl_spread(&self, frontend: Ipv6Addr, n: usize) -> Result<BTreeMap<String, usize>> {
        let mut counts = BTreeMap::new();
        for i in 0..n {
            let (backend, peer) = self
                .curl(frontend, "3")
                .with_context(|| format!("curl {i}"))?;
            ensure!(
                peer.parse() == Ok(frontend),
                "curl {i}: the peer is {peer}, not the frontend {frontend}"
            );
            *counts.entry(backend).or_default() += 1;
        }
        Ok(counts)
    }

    /// `n` UDP sockets in the client, one datagram each to `[FRONTEND]:53`
    /// and its answer: backends per answer. Fails unless recvfrom() names
    /// the frontend.
    fn udp_spread(&self, frontend: Ipv6Addr, n: usize) -> Result<BTreeMap<String, usize>> {
        let target = format!("[{frontend}]:53");
        let spec = format!("{},{target},{n}", self.client.namespace().path().display());
        let exe = std::env::current_exe()?;
        let out = self
            .client_command(
                &exe.display().to_string(),
                &[
                    "udp6_client_process",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ],
            )?
            .env(UDP_CLIENT_ENV, spec)
            .output()
            .context("cannot run the UDP client")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "UDP client failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut counts = BTreeMap::new();
        for line in stdout
            .lines()
            .filter_map(|l| l.split_once("UDP6 ").map(|(_, r)| r))
        {
            let (name, from) = line.split_once(' ').context("UDP6 NAME FROM")?;
            ensure!(
                from == target,
                "recvfrom() says the answer came from {from}, not {target}"
            );
            *counts.entry(name.to_string()).or_default() += 1;
        }
        ensure!(
            counts.values().sum::<usize>() == n,
            "{n} answers expected: {stdout}"
        );
        Ok(counts)
    }
}

/// The UDP client process of `Scene::udp_spread`; does nothing unless
/// started by it.
#[test]
#[ignore = "run by Scene::udp_spread"]
fn udp6_client_process() -> Result<()> {
    let Ok(spec) = std::env::var(UDP_CLIENT_ENV) else {
        return Ok(());
    };
    let mut parts = spec.split(',');
    let (netns, target, n) = (
        parts.next().context("netns")?.to_string(),
        parts.next().context("target")?.parse::<SocketAddr>()?,
        parts.next().context("count")?.parse::<usize>()?,
    );
    for i in 0..n {
        let socket = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        socket.send_to(b"who", target)?;
        let mut buf = [0u8; 512];
        let (len, from) = socket
            .recv_from(&mut buf)
            .with_context(|| format!("datagram {i}: no answer"))?;
        println!("UDP6 {} {from}", String::from_utf8_lossy(&buf[..len]));
    }
    // Entered by nsenter already; the path is checked for the record.
    ensure!(std::path::Path::new(&netns).exists(), "netns {netns}");
    Ok(())
}

/// What both balancing modes must show: TCP and UDP spread over both
/// backends with the frontend as the peer, and the service listed as
/// Cilium prints IPv6.
fn balanced_over_both_backends(scene: &Scene) -> Result<()> {
    let out = scene.service(1, 80, &["a", "b"], HTTP_PORT, &[])?;
    ensure!(out.contains("Creating new service with id '1'"), "{out}");
    scene.service(2, 53, &["a", "b"], UDP_PORT, &["--protocol", "udp"])?;

    let list = scene.agent.cli_ok(&["service", "list"])?;
    let a = SocketAddr::new(Scene::ip6(&scene.backends[0])?.into(), HTTP_PORT);
    ensure!(
        list.contains(&format!("[{VIP}]:80/TCP")) && list.contains(&format!("=> {a}/TCP (active)")),
        "service list:\n{list}"
    );
    let lb = scene.agent.cli_ok(&["bpf", "lb", "list"])?;
    ensure!(
        lb.contains(&format!("[{VIP}]:80/TCP   [::]:0 (1) (0)"))
            && lb.contains(&format!("{a}/TCP (1)")),
        "bpf lb list:\n{lb}"
    );

    let tcp = scene.curl_spread(VIP, 20)?;
    ensure!(
        tcp.len() == 2 && tcp.keys().all(|b| b == "a" || b == "b"),
        "TCP answers: {tcp:?}"
    );
    let udp = scene.udp_spread(VIP, 20)?;
    ensure!(
        udp.len() == 2 && udp.keys().all(|b| b == "a" || b == "b"),
        "UDP answers: {udp:?}"
    );
    eprintln!("IPv6 TCP split {tcp:?}, UDP split {udp:?}");
    Ok(())
}

/// Whether conntrack holds an entry naming the frontend: per-packet
/// balancing remembers each client flow's backend under the frontend's
/// tuple; the socket LB's packets never carry the frontend.
fn conntrack_names_the_frontend(scene: &Scene) -> Result<bool> {
    conntrack_names(scene, SocketAddr::new(VIP.into(), 80))
}

fn conntrack_names(scene: &Scene, frontend: SocketAddr) -> Result<bool> {
    let ct = scene.agent.cli_ok(&["bpf", "ct", "list", "global"])?;
    Ok(ct.contains(&frontend.to_string()))
}

#[test]
fn an_ipv6_cluster_ip_is_balanced_per_packet() -> Result<()> {
    let scene = Scene::start(&["a", "b"], false)?;
    balanced_over_both_backends(&scene)?;
    ensure!(
        conntrack_names_the_frontend(&scene)?,
        "per-packet balancing leaves service entries in conntrack"
    );

    // A frontend is balanced over its own family only.
    let v4 = format!("{}:{HTTP_PORT}", scene.backends[0].ip());
    let out = scene.agent.cli(&[
        "service",
        "update",
        "--id",
        "3",
        "--frontend",
        "[fd00:96::3]:80",
        "--backends",
        &v4,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && err.contains("IPv4 backend for the IPv6 frontend")
            && err.contains("NAT46/64"),
        "mixed families must be refused: {err}"
    );
    ensure!(
        !scene
            .agent
            .cli_ok(&["service", "list"])?
            .contains("fd00:96::3"),
        "the refused service was stored"
    );
    Ok(())
}

#[test]
fn an_ipv6_cluster_ip_is_balanced_by_the_socket_lb() -> Result<()> {
    let scene = Scene::start(&["a", "b"], true)?;
    balanced_over_both_backends(&scene)?;
    ensure!(
        !conntrack_names_the_frontend(&scene)?,
        "the socket LB connects to the backend: no packet should carry the frontend"
    );
    Ok(())
}

#[test]
fn policy_applies_to_the_chosen_ipv6_backend() -> Result<()> {
    let scene = Scene::start(&["ok", "denied"], false)?;
    scene.service(1, 80, &["ok", "denied"], HTTP_PORT, &[])?;
    let denied = scene.backends.iter().find(|p| p.name() == "denied");
    scene
        .agent
        .import_policy(DENY_CLIENT, &[denied.context("no backend pod denied")?])?;

    // Half the connections are balanced to the denied backend and time
    // out; 16 tries all landing on `ok`: p = 1.5e-5.
    let (mut answered, mut failed) = (BTreeMap::new(), 0);
    for _ in 0..16 {
        match scene.curl(VIP, "0.5") {
            Ok((backend, _)) => *answered.entry(backend).or_insert(0) += 1,
            Err(_) => failed += 1,
        }
    }
    ensure!(
        answered.keys().all(|b| b == "ok") && answered.contains_key("ok") && failed > 0,
        "only ok may answer, and the denied backend's share must fail: {answered:?}, {failed} failed"
    );
    eprintln!("answered {answered:?}, {failed} dropped by policy");
    Ok(())
}

/// An IPv4 ClusterIP, reached from a dual-stack AF_INET6 socket (not
/// IPV6_V6ONLY) as `::ffff:a.b.c.d`: connect6/sendmsg6 balance it over the
/// IPv4 backends as connect4 would (its packets are IPv4), and
/// getpeername()/recvmsg() give the mapped ClusterIP back. curl to
/// `[::ffff:10.96.0.9]` for TCP, this test's UDP client (a `[::]` socket)
/// for UDP; no conntrack entry names the ClusterIP, so no packet carried it
/// (unlike the same curl from outside the cgroup, balanced per packet).
#[test]
fn an_ipv4_mapped_cluster_ip_is_balanced_by_the_socket_lb() -> Result<()> {
    const VIP4: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 9);
    let scene = Scene::start(&["a", "b"], true)?;
    scene.service_at(1, VIP4.into(), 80, &["a", "b"], HTTP_PORT, &[])?;
    scene.service_at(
        2,
        VIP4.into(),
        53,
        &["a", "b"],
        UDP_PORT,
        &["--protocol", "udp"],
    )?;
    let mapped = VIP4.to_ipv6_mapped();
    let tcp = scene.curl_spread(mapped, 20)?;
    ensure!(
        tcp.len() == 2 && tcp.keys().all(|b| b == "a" || b == "b"),
        "TCP answers: {tcp:?}"
    );
    let udp = scene.udp_spread(mapped, 20)?;
    ensure!(
        udp.len() == 2 && udp.keys().all(|b| b == "a" || b == "b"),
        "UDP answers: {udp:?}"
    );
    ensure!(
        !conntrack_names(&scene, SocketAddr::new(VIP4.into(), 80))?,
        "the socket LB connects to the backend: no packet should carry {VIP4}:80\n{}",
        scene.agent.cli_ok(&["bpf", "ct", "list", "global"])?
    );
    // The control: the same curl from outside the socket LB's cgroup is
    // balanced per packet, which leaves the ClusterIP in conntrack.
    let url = format!("http://[{mapped}]:80/");
    let out = scene.client.exec(&["curl", "-s", "--max-time", "3", &url]);
    ensure!(
        out.status.success() && conntrack_names(&scene, SocketAddr::new(VIP4.into(), 80))?,
        "per-packet balancing of {url} must answer and leave {VIP4}:80 in conntrack: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    eprintln!("IPv4-mapped TCP split {tcp:?}, UDP split {udp:?}");
    Ok(())
}
