//! The node's own responder: other nodes' HTTP probes to this node's
//! addresses land here (all addresses of both families,
//! --cluster-health-port).

/// Listens and serves on a thread of its own; an error when the port is
/// taken (another agent on this host, or an old responder).
pub fn spawn(port: u16) -> Result<(), String> {
    let listener = ::health::responder::listen_all(port)
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
