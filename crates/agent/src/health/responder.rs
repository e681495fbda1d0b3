//! The node's own responder: other nodes' HTTP probes to this node's
//! address land here (all addresses, --cluster-health-port).

use std::net::{Ipv4Addr, TcpListener};

/// Listens and serves on a thread of its own; an error when the port is
/// taken (another agent on this host, or an old responder).
pub fn spawn(port: u16) -> Result<(), String> {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
        .map_err(|e| format!("health responder cannot listen on TCP port {port}: {e}"))?;
    std::thread::Builder::new()
        .name("health-responder".into())
        .spawn(move || {
            if let Err(e) = ::health::responder::serve(listener) {
                eprintln!("level=error msg=\"health responder stopped: {e}\"");
            }
        })
        .map_err(|e| format!("health responder thread: {e}"))?;
    Ok(())
}
