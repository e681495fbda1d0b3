//! Watching the agent's datapath events: [`Monitor`] reads the API stream
//! for assertions, [`CliMonitor`] runs `cilium monitor` for its text lines
//! (the demo shows them as an operator would see them).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use api::MonitorEvent;

use crate::agent::Agent;

/// Events from `GET /v1/monitor`, collected on a background thread. The
/// subscription exists when [`Monitor::start`] returns, so nothing the
/// datapath reports afterwards is missed. The thread ends with the stream
/// (when the agent stops) or at the first event after the monitor is
/// dropped.
pub struct Monitor {
    events: Receiver<MonitorEvent>,
    seen: Vec<MonitorEvent>,
}

impl Monitor {
    /// Subscribes to `types` (e.g. `["drop"]`; empty means every kind).
    pub fn start(agent: &Agent, types: &[&str]) -> Result<Monitor> {
        let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
        let stream = agent
            .client()
            .monitor(&types)
            .with_context(|| format!("GET /v1/monitor?type={types:?}"))?;
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for event in stream {
                let Ok(event) = event else { break };
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        Ok(Monitor {
            events,
            seen: Vec::new(),
        })
    }

    /// The first event (already seen or arriving within `timeout`) that
    /// satisfies `pred`.
    pub fn wait_for(
        &mut self,
        pred: impl Fn(&MonitorEvent) -> bool,
        timeout: Duration,
    ) -> Option<MonitorEvent> {
        if let Some(ev) = self.seen.iter().find(|ev| pred(ev)) {
            return Some(ev.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) => {
                    self.seen.push(ev.clone());
                    if pred(&ev) {
                        return Some(ev);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Every event received so far (for failure messages).
    pub fn seen(&mut self) -> &[MonitorEvent] {
        self.seen.extend(self.events.try_iter());
        &self.seen
    }

    /// Forgets what was seen, so that later waits only match new events.
    pub fn clear(&mut self) {
        self.seen.clear();
        while self.events.try_recv().is_ok() {}
    }
}

/// `cilium monitor ARGS...` as a child process, its stdout lines collected.
/// Only for the text output: readiness is the banner's last line. Killed on
/// drop.
pub struct CliMonitor {
    child: Child,
    lines: Receiver<String>,
}

const BANNER_END: &str = "Press Ctrl-C to quit";
const BANNER_TIMEOUT: Duration = Duration::from_secs(5);

impl CliMonitor {
    pub fn start(agent: &Agent, args: &[&str]) -> Result<CliMonitor> {
        let mut full = vec!["monitor"];
        full.extend_from_slice(args);
        let mut child = agent
            .cli_command(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start `cilium monitor`")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut monitor = CliMonitor { child, lines };
        if monitor
            .wait_for_line(|l| l.contains(BANNER_END), BANNER_TIMEOUT)
            .is_none()
        {
            let _ = monitor.child.kill();
            let _ = monitor.child.wait();
            let mut stderr = String::new();
            if let Some(mut pipe) = monitor.child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            bail!(
                "`cilium monitor {}` printed no banner within {BANNER_TIMEOUT:?}: {}",
                args.join(" "),
                stderr.trim()
            );
        }
        Ok(monitor)
    }

    /// The next line satisfying `pred` within `timeout`; earlier lines are
    /// consumed.
    pub fn wait_for_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl Drop for CliMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
