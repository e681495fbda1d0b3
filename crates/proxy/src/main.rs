//! `cilium-proxy`: the L7 policy proxy process. The agent starts it, connects
//! to `--config-socket` and configures it (protocol in `proxy::control::protocol`).

use std::path::PathBuf;

use clap::Parser;
use proxy::{ControlServer, ProxyState};

#[derive(Debug, Parser)]
#[command(
    name = "cilium-proxy",
    about = "Transparent L7 policy proxy (HTTP, gRPC, Kafka)"
)]
struct Args {
    /// Unix socket the agent connects to (replaced if it exists).
    #[arg(long, env = "CILIUM_PROXY_CONFIG_SOCKET")]
    config_socket: PathBuf,
    /// Connection worker threads (default: number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    proxy::workers::start(threads)?;
    // Control socket and listeners only; connections run on the workers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server =
            ControlServer::bind(&args.config_socket, ProxyState::default()).map_err(|err| {
                anyhow::anyhow!("cannot listen on {}: {err}", args.config_socket.display())
            })?;
        eprintln!(
            "cilium-proxy: listening for configuration on {}",
            args.config_socket.display()
        );
        tokio::select! {
            result = server.run() => result.map_err(anyhow::Error::from),
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = terminate() => Ok(()),
        }
    })
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
