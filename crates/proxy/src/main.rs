//! `cilium-proxy`: the L7 policy proxy process. The agent starts it, connects
//! to `--config-socket` and configures it (protocol in `proxy::control::protocol`).

use std::path::PathBuf;

use clap::Parser;
use proxy::dns::{parse_duration, DnsSettings, RejectResponse};
use proxy::{ControlServer, ProxyState};

#[derive(Debug, Parser)]
#[command(
    name = "cilium-proxy",
    about = "Transparent L7 policy proxy (HTTP, gRPC, Kafka, DNS)"
)]
struct Args {
    /// Unix socket the agent connects to (replaced if it exists).
    #[arg(long, env = "CILIUM_PROXY_CONFIG_SOCKET")]
    config_socket: PathBuf,
    /// Connection worker threads (default: number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Answer to a DNS query the policy denies: refused or nameError.
    #[arg(long, default_value = "refused", value_parser = str::parse::<RejectResponse>)]
    tofqdns_dns_reject_response_code: RejectResponse,
    /// Longest a DNS answer is held waiting for the agent to allow its
    /// addresses (then released anyway).
    #[arg(
        long,
        alias = "tofqdns-proxy-response-max-delay",
        default_value = "1s",
        value_parser = parse_duration
    )]
    dns_response_max_delay: std::time::Duration,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dns = DnsSettings {
        reject: args.tofqdns_dns_reject_response_code,
        max_delay: args.dns_response_max_delay,
    };
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
            ControlServer::bind(&args.config_socket, ProxyState::new(dns)).map_err(|err| {
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
