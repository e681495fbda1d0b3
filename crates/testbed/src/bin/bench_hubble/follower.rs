//! A client following the flows: the real `hubble observe --follow -o json`
//! (built by scripts/hubble-cli.sh) or our `cilium flows --follow -o json`. A thread of the bench reads its stdout as fast as it
//! comes and counts lines; it parses only the lines that report lost flows.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testbed::bench::tools;
use testbed::Agent;

use crate::pin;

/// The real hubble CLI: $HUBBLE_BIN, else what scripts/hubble-cli.sh built.
pub fn hubble_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("HUBBLE_BIN") {
        return Some(PathBuf::from(bin)).filter(|p| p.is_file());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/hubble-cli.sh");
    let out = Command::new(script).arg("bin").output().ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    path.is_file().then_some(path)
}

/// Which CLI follows.
#[derive(Debug, Clone)]
pub enum Cli {
    Hubble(PathBuf),
    CiliumFlows,
}

impl Cli {
    pub fn describe(&self) -> &'static str {
        match self {
            Cli::Hubble(_) => "`hubble observe --follow -o json`",
            Cli::CiliumFlows => "`cilium flows --follow -o json`",
        }
    }

    fn command(&self, agent: &Agent, socket: &Path) -> Command {
        let server = format!("unix://{}", socket.display());
        match self {
            Cli::Hubble(bin) => {
                let mut c = Command::new(bin);
                c.args(["observe", "--follow", "-o", "json", "--server", &server]);
                // hubble keeps a config directory under $HOME.
                c.env("HOME", socket.parent().unwrap_or(Path::new("/tmp")));
                c
            }
            Cli::CiliumFlows => {
                agent.cli_command(&["flows", "--server", &server, "--follow", "-o", "json"])
            }
        }
    }
}

/// `command` run through `taskset -c <cpu>` (same pid: taskset execs it).
fn on_cpu(cpu: usize, command: &Command) -> Command {
    let mut pinned = Command::new("taskset");
    pinned
        .args(["-c", &cpu.to_string()])
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(v) => pinned.env(key, v),
            None => pinned.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        pinned.current_dir(dir);
    }
    pinned
}

#[derive(Default)]
struct Shared {
    lines: AtomicU64,
    lost: AtomicU64,
}

/// A running client; killed (and its reader joined) on drop.
pub struct Follower {
    child: Child,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Follower {
    /// Starts `cli` (on CPU `cpu` only, with its reader thread, if given).
    pub fn start(cli: &Cli, agent: &Agent, socket: &Path, cpu: Option<usize>) -> Result<Follower> {
        let mut command = match cpu {
            Some(cpu) => on_cpu(cpu, &cli.command(agent, socket)),
            None => cli.command(agent, socket),
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tools::stop_with_parent(&mut command, libc::SIGKILL);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", cli.describe()))?;
        let mut stdout = child.stdout.take().context("no stdout pipe")?;
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("flow-reader".into())
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        // This thread stands for the client's terminal.
                        let _ = pin::pin_thread(cpu);
                    }
                    let mut lines = Lines::default();
                    let mut buf = vec![0u8; 64 * 1024];
                    while !stop.load(Ordering::Relaxed) {
                        match stdout.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => lines.feed(&buf[..n]),
                        }
                        shared.lines.store(lines.lines, Ordering::Relaxed);
                        shared.lost.store(lines.lost, Ordering::Relaxed);
                    }
                })
                .context("cannot start the flow reader thread")?
        };
        Ok(Follower {
            child,
            shared,
            stop,
            reader: Some(reader),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn lines(&self) -> u64 {
        self.shared.lines.load(Ordering::Relaxed)
    }

    /// Flows the server said this client lost (`lost_events`).
    pub fn lost(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// Calls `poke` (which makes flows) until the client printed a line:
    /// then its stream is open. Fails with the CLI's stderr if it exits.
    pub fn wait_streaming(&mut self, poke: impl Fn(), timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.lines() == 0 {
            if let Some(status) = self.child.try_wait()? {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                bail!(
                    "the following client exited with {status}: {}",
                    stderr.trim()
                );
            }
            if Instant::now() >= deadline {
                bail!("the following client printed nothing within {timeout:?}");
            }
            poke();
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Splits the stream into lines (a line may span reads), counts them and
/// sums the flows that `lost_events` lines report.
#[derive(Debug, Default)]
pub struct Lines {
    pub lines: u64,
    pub lost: u64,
    partial: Vec<u8>,
}

impl Lines {
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(end) = chunk.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                self.line(&chunk[..end]);
            } else {
                self.partial.extend_from_slice(&chunk[..end]);
                let line = std::mem::take(&mut self.partial);
                self.line(&line);
            }
            chunk = &chunk[end + 1..];
        }
        self.partial.extend_from_slice(chunk);
    }

    fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        // A flow line starts with {"flow": ...; only lost reports are read.
        if line.starts_with(br#"{"lost_events""#) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
            let lost = &v["lost_events"]["num_events_lost"];
            // jsonpb writes a uint64 as a string.
            self.lost += lost
                .as_u64()
                .or_else(|| lost.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_across_reads_and_sums_lost_reports() {
        let mut l = Lines::default();
        l.feed(b"{\"flow\":{}}\n{\"fl");
        l.feed(b"ow\":{}}\n{\"lost_events\":{\"source\":\"HUBBLE_RING_BUFFER\",");
        l.feed(b"\"num_events_lost\":\"12\"}}\n{\"lost_events\":{\"num_events_lost\":3}}\n");
        assert_eq!((l.lines, l.lost), (4, 15));
    }
}
