//! Connection workers, as Envoy has them: one thread per CPU, each with its
//! own single-threaded runtime (its own epoll), and every accepted
//! connection owned by one worker for its whole life, upstream connection
//! included. Nothing is stolen between threads, so a connection's task, its
//! h2 state and its sockets stay on one core, and a worker that wakes does
//! not wake another one to share its work (a work-stealing runtime does,
//! and on a busy machine each of those wake-ups waits for a CPU). Listeners
//! and the control socket stay on the main runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle};

pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

static WORKERS: OnceLock<Workers> = OnceLock::new();

/// Starts `count` workers (at least one) unless they already run; without
/// this call, the first connection starts one per CPU.
pub fn start(count: usize) -> std::io::Result<()> {
    if WORKERS.get().is_some() {
        return Ok(());
    }
    let workers = Workers::new(count)?;
    // Lost a race with another caller: its workers serve, these idle.
    let _ = WORKERS.set(workers);
    Ok(())
}

fn workers() -> &'static Workers {
    WORKERS.get_or_init(|| {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        Workers::new(count).expect("cannot start the proxy's connection workers")
    })
}

/// Runs a connection's task on the next worker, round robin.
pub fn spawn<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let workers = workers();
    let index = workers.next.fetch_add(1, Ordering::Relaxed) % workers.handles.len();
    workers.handles[index].spawn(task);
}

impl Workers {
    fn new(count: usize) -> std::io::Result<Workers> {
        let mut handles = Vec::new();
        for index in 0..count.max(1) {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            std::thread::Builder::new()
                .name(format!("proxy-worker-{index}"))
                .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_run_on_worker_threads() {
        let (sender, receiver) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let sender = sender.clone();
            spawn(async move {
                let name = std::thread::current().name().map(str::to_string);
                sender.send(name).unwrap();
            });
        }
        for _ in 0..4 {
            let name = receiver.recv().unwrap().unwrap_or_default();
            assert!(name.starts_with("proxy-worker-"), "{name}");
        }
    }
}
