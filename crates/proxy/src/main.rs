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
    /// Worker threads (default: number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    runtime.build()?.block_on(async move {
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
