//! A `cilium monitor -o json` client (the real CLI, no type filter: every
//! event the agent has), its stdout read by a thread of this process either
//! as fast as it comes or at a deliberately slow, fixed pace. The reader
//! counts events by kind and sums the `lost` events the agent sends to a
//! client that fell behind; it never parses ordinary events, so the reader
//! itself stays cheap.

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testbed::Agent;

use testbed::bench::{procstat, tools};

/// How the client's output is consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Read as soon as anything is there, 64 KiB at a time.
    Fast,
    /// At most `bytes` per `every`: a terminal scrolling, a log shipper
    /// that cannot keep up. The CLI blocks on its full stdout pipe, stops
    /// reading its socket, and the agent's stream for it falls behind.
    Slow { bytes: usize, every: Duration },
}

/// What the client printed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub lines: u64,
    pub drops: u64,
    pub verdicts: u64,
    /// Sum of the `lost` fields of `kind: lost` events.
    pub lost: u64,
    /// How many `kind: lost` events arrived.
    pub lost_reports: u64,
}

impl Counts {
    pub fn minus(self, before: Counts) -> Counts {
        Counts {
            lines: self.lines - before.lines,
            drops: self.drops - before.drops,
            verdicts: self.verdicts - before.verdicts,
            lost: self.lost - before.lost,
            lost_reports: self.lost_reports - before.lost_reports,
        }
    }

    /// Datapath events that reached the client (lost reports are not).
    pub fn events(&self) -> u64 {
        self.lines - self.lost_reports
    }
}

#[derive(Default)]
struct SharedCounts {
    lines: AtomicU64,
    drops: AtomicU64,
    verdicts: AtomicU64,
    lost: AtomicU64,
    lost_reports: AtomicU64,
}

impl SharedCounts {
    fn publish(&self, c: &Counts) {
        self.lines.store(c.lines, Ordering::Relaxed);
        self.drops.store(c.drops, Ordering::Relaxed);
        self.verdicts.store(c.verdicts, Ordering::Relaxed);
        self.lost.store(c.lost, Ordering::Relaxed);
        self.lost_reports.store(c.lost_reports, Ordering::Relaxed);
    }

    fn get(&self) -> Counts {
        Counts {
            lines: self.lines.load(Ordering::Relaxed),
            drops: self.drops.load(Ordering::Relaxed),
            verdicts: self.verdicts.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            lost_reports: self.lost_reports.load(Ordering::Relaxed),
        }
    }
}

/// Splits a byte stream into lines (a line may span reads) and counts them.
#[derive(Debug, Default)]
pub struct Tally {
    counts: Counts,
    partial: Vec<u8>,
}

impl Tally {
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

    pub fn counts(&self) -> Counts {
        self.counts
    }

    fn line(&mut self, line: &[u8]) {
        self.counts.lines += 1;
        // serde_json writes struct fields in order and `kind` comes first.
        if line.starts_with(br#"{"kind":"drop""#) {
            self.counts.drops += 1;
        } else if line.starts_with(br#"{"kind":"policy-verdict""#) {
            self.counts.verdicts += 1;
        } else if line.starts_with(br#"{"kind":"lost""#) {
            self.counts.lost_reports += 1;
            let lost = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["lost"].as_u64())
                .unwrap_or(0);
            self.counts.lost += lost;
        }
    }
}

/// A running client; killed (and its reader joined) on drop.
pub struct MonitorClient {
    child: Child,
    counts: Arc<SharedCounts>,
    reader_tid: Arc<AtomicI32>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl MonitorClient {
    pub fn start(agent: &Agent, pace: Pace) -> Result<MonitorClient> {
        let mut command = agent.cli_command(&["monitor", "-o", "json"]);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tools::stop_with_parent(&mut command, libc::SIGKILL);
        let mut child = command
            .spawn()
            .context("cannot start `cilium monitor -o json`")?;
        let mut stdout = child.stdout.take().context("no stdout pipe")?;
        let counts = Arc::new(SharedCounts::default());
        let reader_tid = Arc::new(AtomicI32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (counts, tid, stop) = (counts.clone(), reader_tid.clone(), stop.clone());
            std::thread::Builder::new()
                .name("monitor-reader".into())
                .spawn(move || {
                    // SAFETY: gettid has no preconditions.
                    tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
                    let mut tally = Tally::default();
                    let mut buf = vec![0u8; 64 * 1024];
                    while !stop.load(Ordering::Relaxed) {
                        let want = match pace {
                            Pace::Fast => buf.len(),
                            Pace::Slow { bytes, .. } => bytes.min(buf.len()),
                        };
                        match stdout.read(&mut buf[..want]) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => tally.feed(&buf[..n]),
                        }
                        counts.publish(&tally.counts());
                        if let Pace::Slow { every, .. } = pace {
                            std::thread::sleep(every);
                        }
                    }
                })
                .context("cannot start the monitor reader thread")?
        };
        Ok(MonitorClient {
            child,
            counts,
            reader_tid,
            stop,
            reader: Some(reader),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn counts(&self) -> Counts {
        self.counts.get()
    }

    /// CPU seconds of the bench's thread reading the CLI's output (what a
    /// terminal or a log shipper would spend).
    pub fn reader_cpu_seconds(&self) -> f64 {
        match self.reader_tid.load(Ordering::Relaxed) {
            0 => 0.0,
            tid => procstat::own_thread_cpu_seconds(tid).unwrap_or(0.0),
        }
    }

    /// Waits until the client printed at least `lines` lines; fails with
    /// the CLI's stderr if it exits first.
    pub fn wait_for_lines(&mut self, lines: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.counts().lines < lines {
            if let Some(status) = self.child.try_wait()? {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                bail!(
                    "`cilium monitor -o json` exited with {status}: {}",
                    stderr.trim()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "`cilium monitor -o json` printed {} lines within {timeout:?}, waiting for {lines}",
                    self.counts().lines
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Waits until the counts stop changing for `quiet` (the events in
    /// flight have arrived), at most `timeout`.
    pub fn settle(&self, quiet: Duration, timeout: Duration) -> Counts {
        let deadline = Instant::now() + timeout;
        let mut last = self.counts();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            let now = self.counts();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                break;
            }
        }
        last
    }
}

impl Drop for MonitorClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_kinds_across_split_reads() {
        let text = concat!(
            r#"{"kind":"drop","timestamp_ns":1}"#,
            "\n",
            r#"{"kind":"policy-verdict","verdict":"deny"}"#,
            "\n",
            r#"{"kind":"lost","timestamp_ns":0,"lost":4096}"#,
            "\n",
            r#"{"kind":"trace"}"#,
            "\n",
            r#"{"kind":"drop","timestamp_ns":2}"#,
            "\n",
            r#"{"kind":"lost","lost":7}"#,
            "\n",
        );
        let mut tally = Tally::default();
        for piece in text.as_bytes().chunks(7) {
            tally.feed(piece);
        }
        let c = tally.counts();
        assert_eq!(
            c,
            Counts {
                lines: 6,
                drops: 2,
                verdicts: 1,
                lost: 4103,
                lost_reports: 2,
            }
        );
        assert_eq!(c.events(), 4);
    }

    #[test]
    fn a_line_without_its_newline_is_not_counted_yet() {
        let mut tally = Tally::default();
        tally.feed(br#"{"kind":"drop""#);
        assert_eq!(tally.counts().lines, 0);
        tally.feed(b"}\n");
        assert_eq!(tally.counts().drops, 1);
    }
}
