//! Acceptance of issue 4 for podman: podman (CNI backend) attaches
//! containers through cilium-cni to a real cilium-agent; label policy is
//! enforced between them in the kernel; `podman rm` leaves no endpoint, IP
//! or interface behind. The agent is dual stack (its default), so every
//! container gets an IPv4 and an IPv6 address and the policy holds over
//! both families. Plus cilium-cni's answers to bad input, run
//! directly: CNI error JSON, non-zero exit, nothing created.
//!
//! Cast: `web` serves HTTP on port 80; `frontend` and `intruder` are
//! clients. Podman hands a CNI plugin no container labels, so each role has
//! its own cilium network whose `args.cni.labels` carry `app=<role>`.
//!
//! Needs root and `podman containernetworking-plugins busybox-static runc`
//! (the Makefile's setup installs them), and `cilium-agent`, `cilium` and
//! `cilium-cni` built (`cargo build --release --bins`).

#[path = "containers/support.rs"]
mod support;

use std::net::Ipv6Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use support::{
    assert_nothing_left, check_eth0, link_exists, policy_admits_frontend_and_drops_intruder,
    reaches, Attached, GREETING,
};
use testbed::runtime::{cni, CniNetwork, Podman, Rootfs, CNI_BIN_ENV};
use testbed::{find_binary, unique, Agent, AgentOptions, NetNs};

const IMAGE: &str = "localhost/cilium-test-busybox:latest";

const WEB_POLICY: &str = r#"[{
  "endpointSelector": {"matchLabels": {"app": "web"}},
  "ingress": [{
    "fromEndpoints": [{"matchLabels": {"app": "frontend"}}],
    "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]
  }]
}]"#;

/// Fields drop in order: podman first (its `rm` runs DEL, which needs the
/// agent), then the agent.
struct Scene {
    podman: Podman,
    agent: Agent,
    tag: String,
}

impl Scene {
    fn start() -> Result<Scene> {
        let agent = Agent::start_with(AgentOptions::default().with_unique_range())?;
        let podman = Podman::new()?;
        let tag = unique::next_tag();
        let rootfs = Rootfs::build(
            &agent.temp_dir().join("image"),
            &[("www/index.html", &format!("{GREETING}\n"))],
        )?;
        podman.import(&rootfs.tarball, IMAGE)?;
        for role in ["web", "frontend", "intruder"] {
            CniNetwork::new(&format!("cilium-{role}-{tag}"), agent.socket())
                .label("app", role)
                .write(podman.network_dir())?;
        }
        Ok(Scene { podman, agent, tag })
    }

    /// `podman run -d` on the role's network; waits for the endpoint.
    fn run(&self, role: &str, command: &[&str]) -> Result<Attached> {
        let name = format!("{role}-{}", self.tag);
        let network = format!("cilium-{role}-{}", self.tag);
        let mut args = vec!["run", "-d", "--name", &name, "--network", &network, IMAGE];
        args.extend_from_slice(command);
        let container_id = self.podman.run_ok(&args)?;
        let endpoint = self
            .agent
            .client()
            .endpoint_get(&format!("container-id:{container_id}"))
            .with_context(|| format!("{name}: no endpoint for container {container_id}"))?;
        let wanted = format!("container:app={role}");
        ensure!(
            endpoint.status.identity.labels.contains(&wanted),
            "{name}: endpoint {} has labels {:?}, expected {wanted}",
            endpoint.id,
            endpoint.status.identity.labels
        );
        let ip = endpoint
            .status
            .networking
            .addressing
            .iter()
            .find_map(|a| a.ipv4.as_deref()?.parse().ok())
            .with_context(|| format!("{name}: endpoint {} has no IPv4", endpoint.id))?;
        let ip6: Ipv6Addr = endpoint
            .status
            .networking
            .addressing
            .iter()
            .find_map(|a| a.ipv6.as_deref()?.parse().ok())
            .with_context(|| format!("{name}: endpoint {} has no IPv6", endpoint.id))?;
        check_eth0(&self.podman, &name, ip, ip6)?;
        Ok(Attached {
            name,
            endpoint_id: endpoint.id,
            ip,
            ip6,
            host_ifname: endpoint.status.networking.interface_name.clone(),
        })
    }
}

#[test]
fn podman_containers_on_cilium_obey_label_policy_and_leave_nothing_behind() -> Result<()> {
    let scene = Scene::start()?;
    let web = scene.run("web", &["httpd", "-f", "-p", "80", "-h", "/www"])?;
    let frontend = scene.run("frontend", &["sleep", "600"])?;
    let intruder = scene.run("intruder", &["sleep", "600"])?;

    ensure!(
        reaches(&scene.podman, &frontend, &web) && reaches(&scene.podman, &intruder, &web),
        "without a policy both clients must reach web at {}",
        web.ip
    );

    policy_admits_frontend_and_drops_intruder(
        &scene.agent,
        &scene.podman,
        WEB_POLICY,
        [&web, &frontend, &intruder],
    )?;

    let everyone = [&web, &frontend, &intruder];
    let mut rm = vec!["rm", "--force", "--time", "0"];
    rm.extend(everyone.iter().map(|c| c.name.as_str()));
    scene.podman.run_ok(&rm)?;
    assert_nothing_left(&scene.agent, &scene.podman, &everyone)?;
    Ok(())
}

// ------------------------------------------------------------ bad input

/// One direct run of the plugin binary.
struct CniRun {
    exit_ok: bool,
    stdout: String,
}

impl CniRun {
    /// The error object; fails unless the run failed with CNI error JSON.
    fn error(&self) -> Result<Value> {
        ensure!(!self.exit_ok, "cilium-cni exited 0: {}", self.stdout);
        let v: Value = serde_json::from_str(&self.stdout)
            .with_context(|| format!("stdout is not JSON: {:?}", self.stdout))?;
        ensure!(
            v["code"].is_u64() && v["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "not a CNI error object: {v}"
        );
        ensure!(v["cniVersion"].is_string(), "error lacks cniVersion: {v}");
        Ok(v)
    }
}

fn run_cni(env: &[(&str, &str)], stdin: &str) -> Result<CniRun> {
    let bin = find_binary(cni::PLUGIN_TYPE, CNI_BIN_ENV)?;
    let mut child = Command::new(&bin)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    {
        use std::io::Write;
        let mut input = child.stdin.take().context("no stdin pipe")?;
        input.write_all(stdin.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok(CniRun {
        exit_ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

fn conf(version: &str, socket: &Path) -> String {
    serde_json::json!({
        "cniVersion": version,
        "name": "cilium",
        "type": "cilium-cni",
        "cilium-socket": socket.display().to_string(),
    })
    .to_string()
}

/// The container side of the namespace: link names other than `lo`.
fn links_in(ns: &NetNs) -> Result<Vec<String>> {
    let text = testbed::cmd::ip(&["-n", ns.name(), "-j", "link", "show"])?;
    let v: Value = serde_json::from_str(&text)?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| *n != "lo")
        .map(str::to_string)
        .collect())
}

fn add_env(netns_path: &str) -> Vec<(&str, &str)> {
    vec![
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "cilium-cni-bad-input"),
        ("CNI_NETNS", netns_path),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
}

fn scratch_netns() -> Result<NetNs> {
    let (pid, n) = unique::next_pair();
    NetNs::create(&unique::netns_name(pid, n, "cni-bad-input"))
}

#[test]
fn missing_or_garbled_stdin_is_a_decoding_error() -> Result<()> {
    let ns = scratch_netns()?;
    let path = ns.path().display().to_string();
    for stdin in [
        "",
        "{\"cniVersion\": \"1.0.0\", \"name\":",
        "not json at all",
    ] {
        let e = run_cni(&add_env(&path), stdin)?.error()?;
        ensure!(e["code"] == 6, "stdin {stdin:?}: expected code 6, got {e}");
    }
    ensure!(links_in(&ns)?.is_empty(), "the namespace gained links");
    Ok(())
}

#[test]
fn unknown_cni_version_is_incompatible() -> Result<()> {
    let ns = scratch_netns()?;
    let path = ns.path().display().to_string();
    let e = run_cni(&add_env(&path), &conf("9.9.9", Path::new("/x")))?.error()?;
    ensure!(e["code"] == 1, "expected code 1, got {e}");
    ensure!(
        e["details"].as_str().is_some_and(|d| d.contains("1.0.0")),
        "details must list the supported versions: {e}"
    );
    ensure!(links_in(&ns)?.is_empty(), "the namespace gained links");
    Ok(())
}

#[test]
fn missing_environment_is_invalid_env() -> Result<()> {
    let e = run_cni(&[("CNI_COMMAND", "ADD")], &conf("1.0.0", Path::new("/x")))?.error()?;
    ensure!(e["code"] == 4, "expected code 4, got {e}");
    let e = run_cni(&[], &conf("1.0.0", Path::new("/x")))?.error()?;
    ensure!(e["code"] == 4, "no CNI_COMMAND: expected code 4, got {e}");
    Ok(())
}

#[test]
fn agent_not_running_is_try_again_later_and_creates_nothing() -> Result<()> {
    let ns = scratch_netns()?;
    let path = ns.path().display().to_string();
    let socket = std::env::temp_dir().join(format!("no-agent-{}.sock", unique::next_tag()));
    let e = run_cni(&add_env(&path), &conf("1.0.0", &socket))?.error()?;
    ensure!(e["code"] == 11, "expected code 11, got {e}");
    ensure!(
        e["msg"]
            .as_str()
            .is_some_and(|m| m.contains(&socket.display().to_string())),
        "the message must name the socket: {e}"
    );
    ensure!(links_in(&ns)?.is_empty(), "the namespace gained links");
    // DEL with the agent down must not pretend success either.
    let mut del = add_env(&path);
    del[0] = ("CNI_COMMAND", "DEL");
    let e = run_cni(&del, &conf("1.0.0", &socket))?.error()?;
    ensure!(e["code"] == 11, "DEL: expected code 11, got {e}");
    Ok(())
}

#[test]
fn failed_add_rolls_back_and_del_is_idempotent() -> Result<()> {
    let agent = Agent::start_with(AgentOptions::default().with_unique_range())?;
    let ns = scratch_netns()?;
    let path = ns.path().display().to_string();
    let config = conf("1.0.0", agent.socket());

    // The container already has an eth0: ADD fails after taking an IP.
    testbed::cmd::ip(&[
        "-n",
        ns.name(),
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0peer",
    ])?;
    let e = run_cni(&add_env(&path), &config)?.error()?;
    ensure!(e["code"] == 100, "expected code 100, got {e}");
    let status = agent.client().healthz()?;
    ensure!(
        status.ipam.ipv4.is_empty() && agent.client().endpoint_list()?.is_empty(),
        "a failed ADD left IPs {:?} or endpoints",
        status.ipam.ipv4
    );
    testbed::cmd::ip(&["-n", ns.name(), "link", "del", "eth0"])?;

    // A good ADD, then DEL twice (the second without a namespace, as
    // containerd does): both succeed and everything is gone.
    let ok = run_cni(&add_env(&path), &config)?;
    ensure!(ok.exit_ok, "ADD failed: {}", ok.stdout);
    let result: Value = serde_json::from_str(&ok.stdout)?;
    let host_ifname = result["interfaces"][0]["name"]
        .as_str()
        .context("result has no host interface")?
        .to_string();
    ensure!(link_exists(&host_ifname), "{host_ifname} missing after ADD");
    ensure!(
        links_in(&ns)? == ["eth0"],
        "container links: {:?}",
        links_in(&ns)?
    );

    let mut del = add_env(&path);
    del[0] = ("CNI_COMMAND", "DEL");
    let first = run_cni(&del, &config)?;
    del[2] = ("CNI_NETNS", "");
    let second = run_cni(&del, &config)?;
    if !first.exit_ok || !second.exit_ok {
        bail!("DEL failed: {:?} / {:?}", first.stdout, second.stdout);
    }
    ensure!(!link_exists(&host_ifname), "{host_ifname} left after DEL");
    ensure!(
        links_in(&ns)?.is_empty(),
        "container links left: {:?}",
        links_in(&ns)?
    );
    let status = agent.client().healthz()?;
    ensure!(
        status.ipam.ipv4.is_empty() && agent.client().endpoint_list()?.is_empty(),
        "DEL left IPs {:?} or endpoints",
        status.ipam.ipv4
    );
    Ok(())
}
