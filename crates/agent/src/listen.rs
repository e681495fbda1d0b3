//! TCP listen addresses as Cilium's flags take them: `:9962` (every
//! address), `127.0.0.1:9962`, `[::1]:9962`. Bound at start, so a taken
//! port fails the agent's start-up and names the flag.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

pub fn parse(flag: &str, text: &str) -> Result<SocketAddr> {
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_string()
    };
    full.parse()
        .with_context(|| format!("{flag} {text:?} is not [HOST]:PORT"))
}

pub async fn bind(flag: &str, text: &str) -> Result<TcpListener> {
    let addr = parse(flag, text)?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{flag}: cannot listen on {addr}"))
}
