//! A real `cilium-agent` process on private paths (socket, state directory,
//! bpffs root), so tests never collide with each other or with a node's
//! own agent, and leave nothing behind.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use api::Client;

use crate::unique;

/// Environment variable overriding where `cilium-agent` is found.
pub const AGENT_BIN_ENV: &str = "CILIUM_AGENT_BIN";
/// Environment variable overriding where the `cilium` CLI is found.
pub const CLI_BIN_ENV: &str = "CILIUM_BIN";

const HEALTH_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_GRACE: Duration = Duration::from_secs(5);
const LOG_TAIL_BYTES: u64 = 8 * 1024;
/// How long [`Agent::import_policy`] waits for the pods to enforce a rule.
const POLICY_REALIZE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the agent keeps its socket, state and pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPaths {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    /// Must lie under `/sys/fs/bpf`.
    pub bpf_root: PathBuf,
}

impl AgentPaths {
    /// The paths a production agent uses (Cilium's defaults).
    pub fn node_defaults() -> AgentPaths {
        AgentPaths {
            socket: PathBuf::from(api::DEFAULT_SOCKET),
            state_dir: PathBuf::from("/var/run/cilium/state"),
            bpf_root: PathBuf::from("/sys/fs/bpf/cilium"),
        }
    }

    /// Paths nobody else uses: `/run/cilium-test-<tag>/cilium.sock`, a state
    /// directory inside `temp_dir`, `/sys/fs/bpf/cilium-test-<tag>`.
    fn private(tag: &str, temp_dir: &Path) -> AgentPaths {
        AgentPaths {
            socket: PathBuf::from(format!("/run/cilium-test-{tag}/cilium.sock")),
            state_dir: temp_dir.join("state"),
            bpf_root: PathBuf::from(format!("/sys/fs/bpf/cilium-test-{tag}")),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// `--ipv4-range`; the agent's default (10.200.0.0/16) when `None`.
    pub ipv4_range: Option<String>,
    /// Appended to the command line as they are.
    pub extra_args: Vec<String>,
    /// Private per-agent paths when `None`.
    pub paths: Option<AgentPaths>,
}

impl AgentOptions {
    /// Gives the agent a /24 of its own, for tests that run agents side by
    /// side or must not meet routes left by another run.
    pub fn with_unique_range(mut self) -> AgentOptions {
        let (pid, n) = unique::next_pair();
        let seed = pid.wrapping_mul(31).wrapping_add(n);
        self.ipv4_range = Some(format!(
            "10.{}.{}.0/24",
            201 + (seed / 256) % 50,
            seed % 256
        ));
        self
    }
}

/// A running agent. Dropping it stops the process and removes its socket,
/// state directory, bpffs root and log (the log tail is printed first when
/// the thread is panicking).
pub struct Agent {
    child: Option<Child>,
    paths: AgentPaths,
    temp_dir: PathBuf,
    log_path: PathBuf,
    agent_bin: PathBuf,
    cli_bin: PathBuf,
    args: Vec<String>,
    netns: Option<PathBuf>,
    client: Client,
}

impl Agent {
    /// An agent on private paths and its default IPv4 range.
    pub fn start() -> Result<Agent> {
        Agent::start_with(AgentOptions::default())
    }

    /// The agent gets `PR_SET_PDEATHSIG`: it is stopped when the thread
    /// that started it exits, so a test process killed without running
    /// `Drop` does not leave it running. Start an agent on the thread that
    /// keeps it (a test's own thread, `main`), not on a short-lived helper.
    pub fn start_with(options: AgentOptions) -> Result<Agent> {
        Agent::start_in(options, None)
    }

    /// Like [`Agent::start_with`], the agent running in the network
    /// namespace `netns` (`/run/netns/NAME`, entered with `nsenter --net=`:
    /// a cluster node); in the caller's namespace when `None`.
    pub fn start_in(options: AgentOptions, netns: Option<PathBuf>) -> Result<Agent> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            bail!("the testbed needs root (network namespaces, veths, bpffs)");
        }
        let agent_bin = find_binary("cilium-agent", AGENT_BIN_ENV)?;
        let cli_bin = find_binary("cilium", CLI_BIN_ENV)?;
        let tag = unique::next_tag();
        let temp_dir = std::env::temp_dir().join(format!("cilium-test-{tag}"));
        let paths = options
            .paths
            .clone()
            .unwrap_or_else(|| AgentPaths::private(&tag, &temp_dir));
        refuse_if_listening(&paths.socket)?;
        if !paths.bpf_root.starts_with("/sys/fs/bpf") {
            bail!(
                "bpf root {} is not under /sys/fs/bpf",
                paths.bpf_root.display()
            );
        }
        fs::create_dir_all(&temp_dir)
            .with_context(|| format!("cannot create {}", temp_dir.display()))?;

        let mut args = vec![
            "--socket".to_string(),
            paths.socket.display().to_string(),
            "--state-dir".to_string(),
            paths.state_dir.display().to_string(),
            "--bpf-root".to_string(),
            paths.bpf_root.display().to_string(),
        ];
        if let Some(range) = &options.ipv4_range {
            args.extend(["--ipv4-range".to_string(), range.clone()]);
        }
        args.extend(options.extra_args.iter().cloned());

        // From here on, Drop cleans up whatever the start left behind.
        let mut agent = Agent {
            child: None,
            client: Client::new(&paths.socket),
            log_path: temp_dir.join("agent.log"),
            paths,
            temp_dir,
            agent_bin,
            cli_bin,
            args,
            netns,
        };
        if let Some(dir) = agent.paths.socket.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        fs::create_dir_all(&agent.paths.state_dir)
            .with_context(|| format!("cannot create {}", agent.paths.state_dir.display()))?;
        agent.spawn_and_wait()?;
        Ok(agent)
    }

    /// A client for the agent's API.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn socket(&self) -> &Path {
        &self.paths.socket
    }

    /// The health API's socket (`cilium-health -H`), next to the API socket.
    pub fn health_socket(&self) -> PathBuf {
        self.paths.socket.with_file_name("health.sock")
    }

    pub fn paths(&self) -> &AgentPaths {
        &self.paths
    }

    /// A private scratch directory, removed with the agent (policy files...).
    pub fn temp_dir(&self) -> &Path {
        &self.temp_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The `cilium` CLI pointed at this agent, ready to spawn.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.cli_bin);
        cmd.arg("-H")
            .arg(format!("unix://{}", self.paths.socket.display()))
            .args(args);
        cmd
    }

    /// Runs `cilium -H unix://SOCK ARGS...` to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.cli_bin.display()))
    }

    /// Like [`Agent::cli`] but fails unless the CLI exits 0; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cli(args);
        if !out.status.success() {
            bail!(
                "`cilium {}` failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `cilium policy import` of `yaml` (added to the rules already there),
    /// then waits until each of `realized_by` enforces the revision it
    /// made; returns that revision.
    pub fn import_policy(&self, yaml: &str, realized_by: &[&crate::Pod]) -> Result<u64> {
        let file = self.temp_dir().join("policy.yaml");
        fs::write(&file, yaml).with_context(|| format!("writing {}", file.display()))?;
        let out = self.cli_ok(&["policy", "import", &file.display().to_string()])?;
        let revision = crate::conformance::parse_revision(&out)?;
        for pod in realized_by {
            pod.wait_for_policy_revision(self, revision, POLICY_REALIZE_TIMEOUT)?;
        }
        Ok(revision)
    }

    /// The control socket of the agent's L7 proxy (next to the API socket).
    pub fn proxy_socket(&self) -> PathBuf {
        self.paths
            .socket
            .parent()
            .unwrap_or(Path::new("/"))
            .join("proxy.sock")
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILL, like a crash: nothing is cleaned up by the agent itself.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: signalling our own child, whose pid has not been reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the agent and starts it again on the same paths (state and
    /// pins kept), waiting until it is healthy.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn_and_wait()
    }

    /// Gives `flag` (`--name`) the value `value` from the next start on,
    /// replacing the value it had on the command line.
    pub fn set_flag(&mut self, flag: &str, value: &str) {
        match self.args.iter().position(|a| a == flag) {
            Some(i) if i + 1 < self.args.len() => self.args[i + 1] = value.to_string(),
            _ => self.args.extend([flag.to_string(), value.to_string()]),
        }
    }

    /// Starts the agent again after [`Agent::kill`] (a crash), on the same
    /// paths and flags, waiting until it is healthy.
    pub fn start_again(&mut self) -> Result<()> {
        self.spawn_and_wait()
    }

    /// The last few KiB of the agent's stdout/stderr.
    pub fn log_tail(&self) -> String {
        read_tail(&self.log_path, LOG_TAIL_BYTES)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log_path.display()))
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("cannot create {}", self.log_path.display()))?;
        // `nsenter --net` execs the agent in place: same pid, so kill and
        // PR_SET_PDEATHSIG below reach the agent itself.
        let mut cmd = match &self.netns {
            Some(netns) => {
                let mut cmd = Command::new("nsenter");
                cmd.arg(format!("--net={}", netns.display()))
                    .arg("--")
                    .arg(&self.agent_bin);
                cmd
            }
            None => Command::new(&self.agent_bin),
        };
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: prctl is async-signal-safe. If the test process dies
        // without running Drop, the agent is told to stop instead of
        // lingering with our paths.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.agent_bin.display()))?;
        self.child = Some(child);
        self.wait_healthy()
    }

    fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                bail!(
                    "cilium-agent {} exited with {status} before becoming healthy; log tail:\n{}",
                    self.args.join(" "),
                    self.log_tail()
                );
            }
            let last_error = match self.client.healthz() {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                bail!(
                    "cilium-agent did not answer GET /v1/healthz on {} within {:?} (last error: {last_error}); log tail:\n{}",
                    self.paths.socket.display(),
                    HEALTH_TIMEOUT,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- cilium-agent log tail ({}) ----\n{}\n---- end of agent log ----",
                self.log_path.display(),
                self.log_tail()
            );
        }
        self.stop();
        // The L7 proxy outlives agents on purpose; the test's ends here.
        kill_processes_with_arg(&self.proxy_socket());
        let _ = fs::remove_file(self.proxy_socket());
        let _ = fs::remove_dir_all(&self.paths.state_dir);
        let _ = fs::remove_dir_all(&self.paths.bpf_root);
        let _ = fs::remove_dir_all(&self.temp_dir);
        let _ = fs::remove_file(&self.paths.socket);
        // A killed agent leaves its health API socket next to the main one.
        let _ = fs::remove_file(self.health_socket());
        if let Some(dir) = self.paths.socket.parent() {
            // Only when empty (with the node defaults the state directory
            // lived there too): the directory may hold other things.
            let _ = fs::remove_dir(dir);
        }
    }
}

/// SIGKILLs every process with `arg` among its command-line arguments.
pub fn kill_processes_with_arg(arg: &Path) {
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline
            .split(|b| *b == 0)
            .any(|a| a == arg.as_os_str().as_encoded_bytes())
        {
            // SAFETY: signalling a process we identified by its arguments.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Locates a workspace binary: `$ENV` if set, else next to the running
/// executable's profile directory (tests run from `target/<profile>/deps/`,
/// binaries such as the demo from `target/<profile>/`).
pub fn find_binary(name: &str, env: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("${env} names {}, which does not exist", path.display());
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().context("cannot locate the running executable")?;
    let candidate = profile_dir(&exe)
        .with_context(|| format!("{} has no parent directory", exe.display()))?
        .join(name);
    if !candidate.is_file() {
        bail!(
            "{} not found; build it first (`cargo build --release --bins`) or set ${env}",
            candidate.display()
        );
    }
    Ok(candidate)
}

/// `target/<profile>` for `target/<profile>/deps/x` and `target/<profile>/x`.
fn profile_dir(exe: &Path) -> Option<&Path> {
    let dir = exe.parent()?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent()
    } else {
        Some(dir)
    }
}

fn refuse_if_listening(socket: &Path) -> Result<()> {
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        bail!(
            "something already listens on {}: another cilium-agent is running; stop it first",
            socket.display()
        );
    }
    Ok(())
}

fn read_tail(path: &Path, max: u64) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_skips_deps() {
        assert_eq!(
            profile_dir(Path::new("/w/target/release/deps/single_node-abc")),
            Some(Path::new("/w/target/release"))
        );
        assert_eq!(
            profile_dir(Path::new("/w/target/release/cilium-demo")),
            Some(Path::new("/w/target/release"))
        );
    }

    #[test]
    fn unique_ranges_are_small_private_prefixes() {
        let a = AgentOptions::default()
            .with_unique_range()
            .ipv4_range
            .unwrap();
        let b = AgentOptions::default()
            .with_unique_range()
            .ipv4_range
            .unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("10.") && a.ends_with(".0/24"), "{a}");
    }

    #[test]
    fn private_paths_live_under_bpffs_and_run() {
        let p = AgentPaths::private("7-1", Path::new("/tmp/x"));
        assert!(p.bpf_root.starts_with("/sys/fs/bpf"));
        assert_eq!(p.socket, Path::new("/run/cilium-test-7-1/cilium.sock"));
        assert_eq!(p.state_dir, Path::new("/tmp/x/state"));
    }
}
