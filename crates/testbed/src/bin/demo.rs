//! `cilium-demo`: the `make demo` walk-through, Cilium's Star Wars demo.
//! Starts the agent on the node's default paths and three pods: the
//! `deathstar` (an HTTP service), a `tiefighter` (org=empire) and an `xwing`
//! (org=alliance). An L3/L4 policy lets only the empire reach the deathstar;
//! an L7 policy then allows `POST /v1/request-landing` and turns
//! `PUT /v1/exhaust-port` away with 403. Removes everything it made.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use testbed::narrator::Narrator;
use testbed::starwars::{L3_L4_POLICY, L7_POLICY};
use testbed::{Agent, AgentOptions, AgentPaths, CliMonitor, Pod};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let out = Narrator::new();
    let paths = AgentPaths::node_defaults();
    out.step(&format!(
        "Starting cilium-agent (API {}, pins {}, state {})",
        paths.socket.display(),
        paths.bpf_root.display(),
        paths.state_dir.display()
    ));
    let agent = Agent::start_with(AgentOptions {
        paths: Some(paths),
        ..Default::default()
    })?;
    let result = walk_through(&agent, &out);
    if result.is_err() {
        eprintln!("---- cilium-agent log tail ----\n{}", agent.log_tail());
    }
    let bpf_root = agent.paths().bpf_root.clone();
    drop(agent);
    if result.is_ok() {
        let pins_gone = !bpf_root.exists();
        out.step(&format!(
            "Done: agent and proxy stopped, pods deleted, {} {}",
            bpf_root.display(),
            if pins_gone { "removed" } else { "NOT removed" }
        ));
    }
    result
}

fn walk_through(agent: &Agent, out: &Narrator) -> Result<()> {
    out.step(
        "Creating the deathstar, a tiefighter and an xwing (netns + veth, registered via the API)",
    );
    let deathstar = Pod::create(
        agent,
        "deathstar",
        &["k8s:org=empire", "k8s:class=deathstar"],
    )?;
    let tiefighter = Pod::create(
        agent,
        "tiefighter",
        &["k8s:org=empire", "k8s:class=tiefighter"],
    )?;
    let xwing = Pod::create(agent, "xwing", &["k8s:org=alliance", "k8s:class=xwing"])?;
    for pod in [&deathstar, &tiefighter, &xwing] {
        out.detail(&format!(
            "{:<10} {:<15} endpoint {}",
            pod.name(),
            pod.ip(),
            pod.endpoint_id()
        ));
    }
    let _web = deathstar.serve_http(80)?;
    out.step(&format!(
        "The deathstar serves HTTP on {}:80",
        deathstar.ip()
    ));
    out.command(agent, &["endpoint", "list"])?;
    let landing = format!("http://{}/v1/request-landing", deathstar.ip());
    let exhaust = format!("http://{}/v1/exhaust-port", deathstar.ip());

    out.step("No policy yet: every ship may land");
    for ship in [&tiefighter, &xwing] {
        out.curl(ship, &["-X", "POST", &landing])?;
    }

    out.step("Watching drops and L7 requests with `cilium monitor` in the background");
    let drops = CliMonitor::start(agent, &["--type", "drop"])?;
    let requests = CliMonitor::start(agent, &["--type", "l7"])?;

    out.step("L3/L4 policy: only org=empire may reach the deathstar, on TCP port 80");
    import(out, agent, &deathstar, "sw_l3_l4_policy.yaml", L3_L4_POLICY)?;
    out.curl(&tiefighter, &["-X", "POST", &landing])?;
    if out.curl(&xwing, &["-X", "POST", &landing]).is_ok() {
        bail!("the xwing landed although the policy denies it");
    }
    out.detail("(the xwing's connection is dropped in the kernel; the monitor reports:)");
    let line = drops
        .wait_for_line(|l| l.contains("drop"), Duration::from_secs(3))
        .context("`cilium monitor --type drop` printed no drop line")?;
    out.detail(&line);

    out.step("But any empire ship can still reach every API of the deathstar:");
    out.curl(&tiefighter, &["-X", "PUT", &exhaust])?;

    out.step("L7 policy: the empire may only POST /v1/request-landing");
    import(out, agent, &deathstar, "sw_l3_l4_l7_policy.yaml", L7_POLICY)?;
    out.curl(&tiefighter, &["-X", "POST", &landing])?;
    let denied = out.curl(&tiefighter, &["-X", "PUT", &exhaust])?;
    if !denied.contains("Access denied") {
        bail!("PUT /v1/exhaust-port was not denied: {denied:?}");
    }
    out.detail("(the proxy judged the request; the monitor reports:)");
    let line = requests
        .wait_for_line(|l| l.contains("Denied"), Duration::from_secs(3))
        .context("`cilium monitor --type l7` printed no denied request")?;
    out.detail(&line);

    out.step(&format!(
        "The deathstar's policy map (endpoint {}): the empire's identity on 80/TCP goes to the proxy",
        deathstar.endpoint_id()
    ));
    out.command(
        agent,
        &["bpf", "policy", "get", &deathstar.endpoint_id().to_string()],
    )?;

    out.step(
        "Cleaning up: deleting the pods, stopping the agent and the proxy, removing pins and state",
    );
    Ok(())
}

fn parse_revision(text: &str) -> Result<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("Revision:"))
        .and_then(|r| r.trim().parse().ok())
        .with_context(|| format!("no `Revision: N` in the CLI output {text:?}"))
}

/// Writes and imports a policy, then waits until `subject` enforces it.
fn import(out: &Narrator, agent: &Agent, subject: &Pod, name: &str, policy: &str) -> Result<()> {
    let file = agent.temp_dir().join(name);
    std::fs::write(&file, policy).with_context(|| format!("cannot write {}", file.display()))?;
    out.text(policy);
    out.command(agent, &["policy", "delete", "--all"])?;
    let imported = out.command(agent, &["policy", "import", &file.display().to_string()])?;
    subject.wait_for_policy_revision(agent, parse_revision(&imported)?, Duration::from_secs(10))
}
