//! The allowed flow: iperf3, one TCP stream from the client pod to the
//! server pod, as in the datapath bench.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testbed::{BackgroundProcess, NetNs};

pub const PORT: u16 = 5201;

/// `iperf3 -s` in the server pod; killed on drop.
pub struct IperfServer {
    _process: BackgroundProcess,
}

impl IperfServer {
    pub fn start(server: &NetNs, log: &Path) -> Result<IperfServer> {
        let port = PORT.to_string();
        let process = BackgroundProcess::spawn(server, &["iperf3", "-s", "-p", &port], log)?;
        wait_listening(server, PORT)?;
        Ok(IperfServer { _process: process })
    }
}

/// Waits until `ss` shows a TCP listener on `port` inside `netns`.
fn wait_listening(netns: &NetNs, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = netns.exec(&["ss", "-Htln"])?;
        if String::from_utf8_lossy(&out.stdout).contains(&format!(":{port} ")) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "iperf3 does not listen on TCP {port} in netns {} after 5 s",
                netns.name()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One stream for `seconds`, the first second (slow start) run on top and
/// omitted; Gbit/s received.
pub fn throughput_gbps(client: &NetNs, server: Ipv4Addr, seconds: u32) -> Result<f64> {
    let (ip, port, secs) = (server.to_string(), PORT.to_string(), seconds.to_string());
    let args = [
        "iperf3", "-c", &ip, "-p", &port, "-t", &secs, "-O", "1", "-J",
    ];
    let out = client.exec(&args)?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "iperf3 -J printed no JSON (exit {}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    if let Some(error) = json["error"].as_str() {
        bail!("iperf3 to {ip}:{port} failed: {error}");
    }
    let bps = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("no end.sum_received.bits_per_second in {json}"))?;
    Ok(bps / 1e9)
}
