//! cilium-docker: serves Docker's libnetwork remote network and IPAM
//! driver API for cilium-agent.

use std::path::PathBuf;

use clap::Parser;
use docker_plugin::docker_api::{DockerClient, DEFAULT_DOCKER_HOST};
use docker_plugin::{server, Driver};

#[derive(Parser, Debug)]
#[command(
    name = "cilium-docker",
    about = "Docker network and IPAM plugin for Cilium: `docker network create -d cilium \
             --ipam-driver cilium NET`"
)]
struct Args {
    /// Where dockerd finds the plugin: /run/docker/plugins/<driver name>.sock.
    #[arg(long, default_value_os_t = server::default_socket())]
    socket: PathBuf,
    /// cilium-agent's API socket.
    #[arg(long, env = "CILIUM_SOCK", default_value = api::DEFAULT_SOCKET)]
    agent_socket: String,
    /// dockerd's API socket, read for container labels.
    #[arg(long, env = "DOCKER_HOST", default_value = DEFAULT_DOCKER_HOST)]
    docker_host: String,
    /// Log every call and answer to stderr.
    #[arg(long)]
    debug: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let agent = api::Client::new(api::resolve_socket(Some(&args.agent_socket), None));
    let mut driver = Driver::new(agent, DockerClient::new(&args.docker_host));
    driver.verbose = args.debug;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    eprintln!(
        "cilium-docker: serving on {} (agent {}, dockerd {})",
        args.socket.display(),
        driver.agent.socket().display(),
        driver.docker.socket().display()
    );
    runtime.block_on(server::serve(driver, &args.socket, shutdown_signal()))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("cannot watch SIGTERM");
    let mut int = signal(SignalKind::interrupt()).expect("cannot watch SIGINT");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
