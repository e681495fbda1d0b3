//! Acceptance of issue 4 for Docker: a private dockerd creates a network
//! with the cilium-docker driver and IPAM; containers' labels (`docker run
//! -l app=...`) become their endpoints' `container:` labels; a label policy
//! is enforced between them in the kernel; removing containers and network
//! leaves no endpoint, IP or interface behind. The network is created
//! with `--ipv6`: the plugin's IPAM hands out the agent's IPv6 pool too, so
//! every container has both addresses and the policy holds over both.
//!
//! Cast: `web` serves HTTP on port 80; `frontend` and `intruder` are
//! clients, all on one docker network.
//!
//! Needs root, `docker.io busybox-static` (the Makefile's setup installs
//! them), and `cilium-agent`, `cilium` and `cilium-docker` built.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use testbed::runtime::{DockerPlugin, Dockerd, Rootfs};
use testbed::{eventually, unique, Agent, AgentOptions, Monitor};

const IMAGE: &str = "cilium-test-busybox:latest";
const GREETING: &str = "hello from web";
const REALIZE_TIMEOUT: Duration = Duration::from_secs(10);
const PASS_TIMEOUT: Duration = Duration::from_secs(10);
/// The plugin reads labels from dockerd once the container runs.
const LABEL_TIMEOUT: Duration = Duration::from_secs(20);

const WEB_POLICY: &str = r#"[{
  "endpointSelector": {"matchLabels": {"container:app": "web"}},
  "ingress": [{
    "fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
    "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]
  }]
}]"#;

struct Attached {
    name: String,
    endpoint_id: u16,
    ip: Ipv4Addr,
    ip6: Ipv6Addr,
    host_ifname: String,
}

/// Fields drop in order: dockerd first (removing containers and networks
/// calls the plugin, which calls the agent), then the plugin, the agent.
struct Scene {
    docker: Dockerd,
    plugin: DockerPlugin,
    agent: Agent,
    network: String,
    tag: String,
}

impl Scene {
    fn start() -> Result<Scene> {
        let agent = Agent::start_with(AgentOptions::default().with_unique_range())?;
        let docker = Dockerd::start()?;
        let tag = unique::next_tag();
        let plugin = DockerPlugin::start(&format!("cilium-{tag}"), agent.socket(), &docker)?;
        let rootfs = Rootfs::build(
            &docker.temp_dir().join("image"),
            &[("www/index.html", &format!("{GREETING}\n"))],
        )?;
        docker.import(&rootfs.tarball, IMAGE)?;
        let network = format!("net-{tag}");
        docker.run_ok(&[
            "network",
            "create",
            "--ipv6",
            "-d",
            plugin.name(),
            "--ipam-driver",
            plugin.name(),
            &network,
        ])?;
        Ok(Scene {
            docker,
            plugin,
            agent,
            network,
            tag,
        })
    }

    /// `docker run -d -l app=ROLE` on the network; waits until the endpoint
    /// carries the container's label.
    fn run(&self, role: &str, command: &[&str]) -> Result<Attached> {
        let name = format!("{role}-{}", self.tag);
        let label = format!("app={role}");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--net",
            &self.network,
            "-l",
            &label,
            IMAGE,
        ];
        args.extend_from_slice(command);
        self.docker.run_ok(&args)?;
        let networks: Value = serde_json::from_str(&self.docker.run_ok(&[
            "inspect",
            "-f",
            "{{json .NetworkSettings.Networks}}",
            &name,
        ])?)?;
        let settings = &networks[&self.network];
        let endpoint = settings["EndpointID"]
            .as_str()
            .with_context(|| format!("{name}: no EndpointID in {networks}"))?;
        let ip: Ipv4Addr = settings["IPAddress"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("{name}: no IPAddress in {networks}"))?;
        let ip6: Ipv6Addr = settings["GlobalIPv6Address"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("{name}: no GlobalIPv6Address in {networks}"))?;

        let wanted = format!("container:app={role}");
        let client = self.agent.client();
        let id = format!("container-id:{endpoint}");
        let labelled = eventually(LABEL_TIMEOUT, Duration::from_millis(50), || {
            client
                .endpoint_get(&id)
                .is_ok_and(|ep| ep.status.identity.labels.contains(&wanted))
        });
        let ep = client
            .endpoint_get(&id)
            .with_context(|| format!("{name}: no endpoint {id}"))?;
        ensure!(
            labelled,
            "{name}: endpoint {} has labels {:?}, expected {wanted}; plugin log:\n{}",
            ep.id,
            ep.status.identity.labels,
            self.plugin.log_tail()
        );
        let ep_ip = ep
            .status
            .networking
            .addressing
            .first()
            .and_then(|a| a.ipv4.clone());
        ensure!(
            ep_ip.as_deref() == Some(ip.to_string().as_str()),
            "{name}: docker says {ip}, the endpoint {ep_ip:?}"
        );
        let ep_ip6 = ep.status.networking.addressing[0].ipv6.clone();
        ensure!(
            ep_ip6.as_deref() == Some(ip6.to_string().as_str()),
            "{name}: docker says {ip6}, the endpoint {ep_ip6:?}"
        );
        let addrs = self
            .docker
            .run_ok(&["exec", &name, "ip", "addr", "show", "dev", "eth0"])?;
        for ip in [IpAddr::from(ip), ip6.into()] {
            ensure!(
                addrs.contains(&format!("{ip}/")),
                "{name}: {ip} not in\n{addrs}"
            );
        }
        Ok(Attached {
            name,
            endpoint_id: ep.id,
            ip,
            ip6,
            host_ifname: ep.status.networking.interface_name,
        })
    }

    fn fetch(&self, client: &Attached, ip: IpAddr) -> bool {
        let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 80");
        self.docker
            .output(&["exec", &client.name, "sh", "-c", &script])
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(GREETING))
    }

    /// Over IPv4 and over IPv6.
    fn reaches(&self, client: &Attached, server: &Attached) -> bool {
        [server.ip.into(), server.ip6.into()].into_iter().all(|ip| {
            eventually(PASS_TIMEOUT, Duration::from_millis(200), || {
                self.fetch(client, ip)
            })
        })
    }

    fn is_blocked(&self, client: &Attached, server: &Attached) -> bool {
        [server.ip.into(), server.ip6.into()]
            .into_iter()
            .all(|ip| (0..3).all(|_| !self.fetch(client, ip)))
    }
}

#[test]
fn docker_containers_on_cilium_obey_label_policy_and_leave_nothing_behind() -> Result<()> {
    let scene = Scene::start()?;
    let web = scene.run("web", &["httpd", "-f", "-p", "80", "-h", "/www"])?;
    let frontend = scene.run("frontend", &["sleep", "600"])?;
    let intruder = scene.run("intruder", &["sleep", "600"])?;

    ensure!(
        scene.reaches(&frontend, &web) && scene.reaches(&intruder, &web),
        "without a policy both clients must reach web at {}; plugin log:\n{}",
        web.ip,
        scene.plugin.log_tail()
    );

    let mut drops = Monitor::start(&scene.agent, &["drop"])?;
    let revision = scene.agent.client().policy_put(WEB_POLICY, false)?.revision;
    wait_for_revision(&scene.agent, web.endpoint_id, revision)?;

    ensure!(
        scene.reaches(&frontend, &web),
        "frontend (app=frontend) -> web:80 must pass under the policy"
    );
    ensure!(
        scene.is_blocked(&intruder, &web),
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

    let everyone = [&web, &frontend, &intruder];
    let mut rm = vec!["rm", "-f"];
    rm.extend(everyone.iter().map(|c| c.name.as_str()));
    scene.docker.run_ok(&rm)?;
    scene.docker.run_ok(&["network", "rm", &scene.network])?;
    assert_nothing_left(&scene.agent, &everyone)
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

fn assert_nothing_left(agent: &Agent, removed: &[&Attached]) -> Result<()> {
    let client = agent.client();
    let endpoints = client.endpoint_list()?;
    ensure!(
        endpoints.is_empty(),
        "endpoints left after docker rm: {:?}",
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
            testbed::cmd::ip(&["link", "show", "dev", &c.host_ifname]).is_err(),
            "{}: host veth {} is still there",
            c.name,
            c.host_ifname
        );
        let peer = format!("tmp{}", &c.host_ifname[3..]);
        ensure!(
            testbed::cmd::ip(&["link", "show", "dev", &peer]).is_err(),
            "{}: container-side veth {peer} is back in the host and still there",
            c.name
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
