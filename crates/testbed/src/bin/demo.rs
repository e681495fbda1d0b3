//! `cilium-demo`: the `make demo` walk-through. Starts the agent on the
//! node's default paths, creates three pods, enforces an ingress policy on
//! one of them, shows an allowed and a denied connection with the
//! monitor's drop line, and removes everything it made.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use testbed::{Agent, AgentOptions, AgentPaths, CliMonitor, Pod};

const POLICY: &str = "\
- endpointSelector:
    matchLabels:
      app: backend
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: frontend
    toPorts:
    - ports:
      - port: \"80\"
        protocol: TCP
";

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
            "Done: agent stopped, pods deleted, {} {}",
            bpf_root.display(),
            if pins_gone { "removed" } else { "NOT removed" }
        ));
    }
    result
}

fn walk_through(agent: &Agent, out: &Narrator) -> Result<()> {
    out.step("Creating pods frontend, backend and intruder (netns + veth, registered via the API)");
    let frontend = Pod::create(agent, "frontend", &["k8s:app=frontend"])?;
    let backend = Pod::create(agent, "backend", &["k8s:app=backend"])?;
    let intruder = Pod::create(agent, "intruder", &["k8s:app=intruder"])?;
    for pod in [&frontend, &backend, &intruder] {
        out.detail(&format!(
            "{:<9} {:<15} endpoint {}",
            pod.name(),
            pod.ip(),
            pod.endpoint_id()
        ));
    }
    let _web = backend.serve_tcp(80)?;
    out.step(&format!("backend serves TCP {}:80", backend.ip()));
    out.command(agent, &["endpoint", "list"])?;

    out.step("Watching for drops with `cilium monitor --type drop` in the background");
    let monitor = CliMonitor::start(agent, &["--type", "drop"])?;

    out.step("Importing a policy: only app=frontend may reach app=backend, on TCP port 80");
    let file = agent.temp_dir().join("backend-policy.yaml");
    std::fs::write(&file, POLICY).with_context(|| format!("cannot write {}", file.display()))?;
    out.text(POLICY);
    let imported = out.command(agent, &["policy", "import", &file.display().to_string()])?;
    let revision = parse_revision(&imported)?;
    backend.wait_for_policy_revision(agent, revision, Duration::from_secs(10))?;

    let allowed = testbed::eventually(Duration::from_secs(3), Duration::ZERO, || {
        frontend.tcp_connect(backend.ip(), 80, Duration::from_secs(1))
    });
    if !allowed {
        bail!("frontend could not reach backend:80, which the policy allows");
    }
    out.step("frontend -> backend:80  ALLOWED (connection answered)");

    if intruder.tcp_connect(backend.ip(), 80, Duration::from_secs(1)) {
        bail!("intruder reached backend:80 although the policy denies it");
    }
    out.step("intruder -> backend:80  DENIED (no answer); the monitor reports:");
    let line = monitor
        .wait_for_line(|l| l.contains("drop"), Duration::from_secs(3))
        .context("`cilium monitor --type drop` printed no drop line")?;
    out.detail(&line);

    out.step(&format!(
        "The backend's policy map (endpoint {}) allows the frontend identity on 80/TCP",
        backend.endpoint_id()
    ));
    out.command(
        agent,
        &["bpf", "policy", "get", &backend.endpoint_id().to_string()],
    )?;

    out.step("Cleaning up: deleting the pods, stopping the agent, removing pins and state");
    Ok(())
}

fn parse_revision(text: &str) -> Result<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("Revision:"))
        .and_then(|r| r.trim().parse().ok())
        .with_context(|| format!("no `Revision: N` in the CLI output {text:?}"))
}

/// One bold line per step; command output indented beneath.
struct Narrator {
    color: bool,
}

impl Narrator {
    fn new() -> Narrator {
        Narrator {
            color: std::io::stdout().is_terminal(),
        }
    }

    fn step(&self, what: &str) {
        if self.color {
            println!("\n\x1b[1;36m==>\x1b[0m \x1b[1m{what}\x1b[0m");
        } else {
            println!("\n==> {what}");
        }
    }

    fn detail(&self, line: &str) {
        println!("    {line}");
    }

    fn text(&self, text: &str) {
        for line in text.lines() {
            self.detail(line);
        }
    }

    /// Runs and prints `cilium ARGS...`; returns its stdout.
    fn command(&self, agent: &Agent, args: &[&str]) -> Result<String> {
        let prompt = format!("$ cilium {}", args.join(" "));
        if self.color {
            println!("    \x1b[2m{prompt}\x1b[0m");
        } else {
            println!("    {prompt}");
        }
        let stdout = agent.cli_ok(args)?;
        self.text(&stdout);
        Ok(stdout)
    }
}
