//! cilium-health: shows the node-to-node connectivity the local agent's
//! health checker measured (`status`), checks that its API is up (`ping`),
//! and answers other nodes' HTTP probes inside a health endpoint
//! (`responder`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
        /// Exit once this interface is gone (the health endpoint was torn
        /// down), or when it has not appeared within a minute
        #[arg(long)]
        watch_interface: Option<String>,
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
        Command::Responder {
            listen,
            pidfile,
            watch_interface,
        } => {
            if let Some(ifname) = watch_interface {
                std::thread::spawn(move || exit_when_gone(&ifname));
            }
            responder(listen, pidfile)?
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn responder(port: u16, pidfile: Option<PathBuf>) -> Result<()> {
    let listener = health::responder::listen_all(port)
        .with_context(|| format!("cannot listen on TCP port {port}"))?;
    if let Some(path) = &pidfile {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write the pidfile {}", path.display()))?;
    }
    eprintln!("cilium-health responder: answering GET /hello on :{port}");
    health::responder::serve(listener).context("accepting connections")?;
    Ok(())
}

/// How long the interface may take to appear (the agent plumbs it after
/// starting the responder).
const INTERFACE_APPEARS_WITHIN: Duration = Duration::from_secs(60);

/// A responder whose interface is gone serves nobody: it ends with it, so
/// tearing down an endpoint (or the node's namespace) leaves no process.
fn exit_when_gone(ifname: &str) {
    let Ok(name) = std::ffi::CString::new(ifname) else {
        return;
    };
    let started = Instant::now();
    let mut seen = false;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        // SAFETY: a valid NUL-terminated name.
        let present = unsafe { libc::if_nametoindex(name.as_ptr()) } != 0;
        if present {
            seen = true;
        } else if seen || started.elapsed() > INTERFACE_APPEARS_WITHIN {
            eprintln!("cilium-health responder: interface {ifname} is gone, exiting");
            std::process::exit(0);
        }
    }
}
