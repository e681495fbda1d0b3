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

#[path = "containers/support.rs"]
mod support;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use support::{
    assert_nothing_left, check_eth0, link_exists, policy_admits_frontend_and_drops_intruder,
    reaches, Attached, GREETING,
};
use testbed::runtime::{DockerPlugin, Dockerd, Rootfs};
use testbed::{eventually, unique, Agent, AgentOptions};

const IMAGE: &str = "cilium-test-busybox:latest";
/// The plugin reads labels from dockerd once the container runs.
const LABEL_TIMEOUT: Duration = Duration::from_secs(20);

const WEB_POLICY: &str = r#"[{
  "endpointSelector": {"matchLabels": {"container:app": "web"}},
  "ingress": [{
    "fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
    "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]
  }]
}]"#;

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
        check_eth0(&self.docker, &name, ip, ip6)?;
        Ok(Attached {
            name,
            endpoint_id: ep.id,
            ip,
            ip6,
            host_ifname: ep.status.networking.interface_name,
        })
    }
}

#[test]
fn docker_containers_on_cilium_obey_label_policy_and_leave_nothing_behind() -> Result<()> {
    let scene = Scene::start()?;
    let web = scene.run("web", &["httpd", "-f", "-p", "80", "-h", "/www"])?;
    let frontend = scene.run("frontend", &["sleep", "600"])?;
    let intruder = scene.run("intruder", &["sleep", "600"])?;

    ensure!(
        reaches(&scene.docker, &frontend, &web) && reaches(&scene.docker, &intruder, &web),
        "without a policy both clients must reach web at {}; plugin log:\n{}",
        web.ip,
        scene.plugin.log_tail()
    );

    policy_admits_frontend_and_drops_intruder(
        &scene.agent,
        &scene.docker,
        WEB_POLICY,
        [&web, &frontend, &intruder],
    )?;

    let everyone = [&web, &frontend, &intruder];
    let mut rm = vec!["rm", "-f"];
    rm.extend(everyone.iter().map(|c| c.name.as_str()));
    scene.docker.run_ok(&rm)?;
    scene.docker.run_ok(&["network", "rm", &scene.network])?;
    assert_nothing_left(&scene.agent, &scene.docker, &everyone)?;
    assert_no_container_veth(&everyone)
}

/// Beyond what [`assert_nothing_left`] checks: the plugin's container-side
/// veth did not come back to the host either.
fn assert_no_container_veth(removed: &[&Attached]) -> Result<()> {
    for c in removed {
        let peer = format!("tmp{}", &c.host_ifname[3..]);
        ensure!(
            !link_exists(&peer),
            "{}: container-side veth {peer} is back in the host and still there",
            c.name
        );
    }
    Ok(())
}
