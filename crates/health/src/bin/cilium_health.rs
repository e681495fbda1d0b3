//! cilium-health: shows the node-to-node connectivity the local agent's
//! health checker measured (`status`), checks that its API is up (`ping`),
//! and answers other nodes' HTTP probes inside a health endpoint
//! (`responder`).

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use health::{render, HealthClient};

#[derive(Parser, Debug)]
#[command(name = "cilium-health", version, about = "Cilium Health Client")]
struct Cli {
    /// URI to the cilium-health server API (unix socket)
    #[arg(
        short = 'H',
        long = "host",
        global = true,
        env = "CILIUM_HEALTH_SOCK",
        default_value = health::DEFAULT_SOCKET
    )]
    host: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Display cilium connectivity to other nodes
    Status {
        /// Synchronously probe connectivity status
        #[arg(long)]
        probe: bool,
        /// Output format
        #[arg(short = 'o', long = "output", value_parser = ["json"])]
        output: Option<String>,
    },
    /// Check whether the cilium-health API is up
    Ping,
    /// Answer HTTP health probes (GET /hello) on a TCP port, e.g. inside a
    /// health endpoint's network namespace
    Responder {
        /// TCP port to listen on (all addresses)
        #[arg(long, default_value_t = health::DEFAULT_PORT)]
        listen: u16,
        /// Write the process id to this file
        #[arg(long)]
        pidfile: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let client = HealthClient::new(&cli.host);
    match cli.command {
        Command::Status { probe, output } => {
            let status = if probe {
                client.probe()
            } else {
                client.status()
            }
            .context("cannot get cluster connectivity status")?;
            if output.is_some() {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", render::status(&status));
            }
        }
        Command::Ping => {
            client.healthz().context("the cilium-health API is down")?;
            println!("OK");
        }
        Command::Responder { listen, pidfile } => responder(listen, pidfile)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn responder(port: u16, pidfile: Option<PathBuf>) -> Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
        .with_context(|| format!("cannot listen on TCP port {port}"))?;
    if let Some(path) = &pidfile {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write the pidfile {}", path.display()))?;
    }
    eprintln!("cilium-health responder: answering GET /hello on :{port}");
    health::responder::serve(listener).context("accepting connections")?;
    Ok(())
}
