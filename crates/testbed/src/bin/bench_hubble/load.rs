//! The measured traffic: wrk in the client pod against nginx in the server
//! pod with `Connection: close`, so every request is a connection of its
//! own (handshake, request, response, nginx closes first, so TIME_WAIT
//! mostly stays on the server; the client pod reuses the ports of the
//! connections where wrk closed first, see scene.rs).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use testbed::bench::tools;

use crate::l7_load::parse_wrk;
use crate::pin::on_cpu;
use crate::scene::Scene;

/// One wrk run.
#[derive(Debug, Clone, Copy)]
pub struct ShortRun {
    /// Requests/s, each on a new connection.
    pub connections_per_s: f64,
    pub requests: u64,
    /// Non-2xx responses and socket errors.
    pub bad: u64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// `wrk -t1 -c<connections> -d<duration> -H 'Connection: close' --latency`,
/// on CPU `cpu` only if given.
pub fn short_connections(
    scene: &Scene,
    connections: u32,
    duration: Duration,
    cpu: Option<usize>,
) -> Result<ShortRun> {
    let (c, d) = (
        format!("-c{connections}"),
        format!("-d{}s", duration.as_secs().max(1)),
    );
    let url = scene.url();
    let cpu = cpu.map(|c| c.to_string());
    let wrk = [
        "wrk",
        "-t1",
        &c,
        &d,
        "--timeout",
        "2s",
        "--latency",
        "-H",
        "Connection: close",
        &url,
    ];
    let args = on_cpu(cpu.as_deref(), &wrk);
    let out = tools::run_in(scene.client.namespace(), &args)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let r = parse_wrk(&text).with_context(|| format!("cannot read wrk's output:\n{text}"))?;
    ensure!(
        r.requests > 0 && r.bad * 100 <= r.requests,
        "wrk to {url}: {} of {} requests failed:\n{text}",
        r.bad,
        r.requests
    );
    Ok(ShortRun {
        connections_per_s: r.requests_per_second,
        requests: r.requests,
        bad: r.bad,
        p50_us: r.p50_us,
        p99_us: r.p99_us,
    })
}
