//! The allowed flow's server: `iperf3 -s` in the server pod, measured with
//! `testbed::bench::measure::throughput_gbps` as in the datapath bench.

use std::path::Path;

use anyhow::Result;
use testbed::bench::servers::{wait_listening, IPERF_PORT};
use testbed::{BackgroundProcess, NetNs};

/// `iperf3 -s` in the server pod; killed on drop.
pub struct IperfServer {
    _process: BackgroundProcess,
}

impl IperfServer {
    pub fn start(server: &NetNs, log: &Path) -> Result<IperfServer> {
        let port = IPERF_PORT.to_string();
        let process = BackgroundProcess::spawn(server, &["iperf3", "-s", "-p", &port], log)?;
        wait_listening(server, &[IPERF_PORT])?;
        Ok(IperfServer { _process: process })
    }
}
