//! A thread that samples something in a loop while switched on, stamping
//! each sample with the time it started: connection attempts from a pod's
//! namespace (the traffic signal), an endpoint's policy revision from its
//! agent (the API signal). Off, it sleeps; the bench switches samplers on
//! only while it times a change, so they do not load the machine between.

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A connection attempt's handshake limit: a denied SYN is dropped, so
/// this bounds how long a denied attempt takes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(20);
/// Once connected, how long the server's line may take (its accept loop
/// polls every 5 ms; on a loaded machine more).
const READ_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy)]
pub struct Sample<T> {
    pub at: Instant,
    pub value: T,
}

struct Shared<T> {
    on: AtomicBool,
    stop: AtomicBool,
    samples: Mutex<Vec<Sample<T>>>,
}

pub struct Sampler<T> {
    shared: Arc<Shared<T>>,
    worker: Option<JoinHandle<()>>,
}

impl<T: Clone + Send + 'static> Sampler<T> {
    /// Runs `sample` every `pause` (after each sample) while on, on a
    /// thread that first joins the network namespace `netns` if given.
    pub fn start(
        netns: Option<PathBuf>,
        pause: Duration,
        mut sample: impl FnMut() -> T + Send + 'static,
    ) -> Result<Sampler<T>> {
        let ns = match &netns {
            Some(path) => Some(
                File::open(path)
                    .with_context(|| format!("cannot open network namespace {}", path.display()))?,
            ),
            None => None,
        };
        let shared = Arc::new(Shared {
            on: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            samples: Mutex::new(Vec::new()),
        });
        let (joined_tx, joined_rx) = std::sync::mpsc::channel();
        let worker = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                if let Some(ns) = ns {
                    // SAFETY: plain syscall on a valid fd; it changes only
                    // this dedicated thread's network namespace.
                    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                    if rc != 0 {
                        let _ = joined_tx.send(Err(std::io::Error::last_os_error()));
                        return;
                    }
                }
                let _ = joined_tx.send(Ok(()));
                while !shared.stop.load(Ordering::Relaxed) {
                    if !shared.on.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    let at = Instant::now();
                    let value = sample();
                    lock(&shared.samples).push(Sample { at, value });
                    std::thread::sleep(pause);
                }
            })
        };
        let mut sampler = Sampler {
            shared,
            worker: Some(worker),
        };
        match joined_rx.recv() {
            Ok(Ok(())) => Ok(sampler),
            Ok(Err(e)) => bail!("setns({netns:?}): {e}"),
            Err(_) => {
                sampler.worker.take();
                bail!("the sampler thread ended before it started")
            }
        }
    }

    /// Switches sampling on or off (an attempt under way finishes).
    pub fn set_on(&self, on: bool) {
        self.shared.on.store(on, Ordering::Relaxed);
    }

    /// Drops every sample so far.
    pub fn clear(&self) {
        lock(&self.shared.samples).clear();
    }

    /// The samples so far, oldest first.
    pub fn samples(&self) -> Vec<Sample<T>> {
        lock(&self.shared.samples).clone()
    }
}

impl<T> Drop for Sampler<T> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn lock<V>(m: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One connection from the calling thread's namespace: true when the
/// handshake completes within [`CONNECT_TIMEOUT`] and the server's line
/// arrives.
pub fn connects(to: SocketAddr) -> bool {
    let Ok(mut conn) = TcpStream::connect_timeout(&to, CONNECT_TIMEOUT) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(READ_TIMEOUT));
    let mut buf = [0u8; 64];
    matches!(conn.read(&mut buf), Ok(n) if n > 0)
}

/// When a stream of yes/no samples settled on `outcome`: the start of the
/// last run of `outcome` samples (which must end the stream, hold at least
/// `min_samples` and last `min_span` up to `now`), and the start of the
/// sample before that run (the other outcome), if any. The change happened
/// after the latter and no later than (shortly after) the former.
pub fn settled<T: Copy>(
    samples: &[Sample<T>],
    outcome: impl Fn(T) -> bool,
    min_samples: usize,
    min_span: Duration,
    now: Instant,
) -> Option<(Instant, Option<Instant>)> {
    let run = samples
        .iter()
        .rev()
        .take_while(|s| outcome(s.value))
        .count();
    if run < min_samples.max(1) {
        return None;
    }
    let first = samples[samples.len() - run].at;
    if now.saturating_duration_since(first) < min_span {
        return None;
    }
    let before = samples.len().checked_sub(run + 1).map(|i| samples[i].at);
    Some((first, before))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(base: Instant, outcomes: &[bool]) -> Vec<Sample<bool>> {
        outcomes
            .iter()
            .enumerate()
            .map(|(i, &value)| Sample {
                at: base + Duration::from_millis(10 * i as u64),
                value,
            })
            .collect()
    }

    #[test]
    fn the_last_run_counts_not_a_stray_sample_before_it() {
        let t = Instant::now();
        // A false failure at 10 ms, then allowed from 40 ms on.
        let s = stream(t, &[true, false, true, false, true, true, true]);
        let (first, before) = settled(
            &s,
            |ok| ok,
            3,
            Duration::from_millis(20),
            t + Duration::from_millis(70),
        )
        .unwrap();
        assert_eq!(first - t, Duration::from_millis(40));
        assert_eq!(before.unwrap() - t, Duration::from_millis(30));
    }

    #[test]
    fn too_short_or_too_recent_a_run_is_not_settled() {
        let t = Instant::now();
        let s = stream(t, &[false, true, true]);
        let end = t + Duration::from_millis(200);
        assert!(settled(&s, |ok| ok, 3, Duration::ZERO, end).is_none());
        assert!(settled(&s, |ok| ok, 2, Duration::from_secs(1), end).is_none());
        let (first, before) = settled(&s, |ok| ok, 2, Duration::ZERO, end).unwrap();
        assert_eq!(
            (first - t, before.unwrap() - t),
            (Duration::from_millis(10), Duration::ZERO)
        );
        let all = stream(t, &[true, true]);
        assert_eq!(
            settled(&all, |ok| ok, 2, Duration::ZERO, end).unwrap().1,
            None
        );
        assert!(settled(&s, |ok| !ok, 1, Duration::ZERO, end).is_none());
    }
}
