//! Rough throughput check, not run by default:
//! `cargo test --release -p proxy --test bench -- --ignored --nocapture`.
//! h2load (HTTP/1.1 mode) against the echo upstream directly and through the
//! proxy with an L7 allow rule. The real benchmark (`make bench`) is the lead's.

mod common;

use common::{free_port, run, EchoServer, Proxy};
use serde_json::json;

fn h2load(url: &str) -> String {
    let output = run(
        "h2load",
        &["--h1", "-n", "40000", "-c", "16", "-t", "1", url],
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.lines()
        .filter(|l| {
            l.starts_with("finished in")
                || l.starts_with("requests:")
                || l.contains("time for request")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
#[ignore]
fn direct_versus_proxied() {
    let upstream = EchoServer::start();
    let mut proxy = Proxy::start();
    let port = free_port();
    proxy.fixed_redirect(
        port,
        "http",
        &upstream.addr,
        json!([{"identity": 0, "rules": {"http": [{"method": "GET", "path": "/public"}]}}]),
    );
    println!(
        "direct:\n{}",
        h2load(&format!("http://{}/public", upstream.addr))
    );
    println!(
        "proxied:\n{}",
        h2load(&format!("http://127.0.0.1:{port}/public"))
    );
}
