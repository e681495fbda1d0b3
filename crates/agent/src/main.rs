//! cilium-agent: the node daemon. Wires the daemon, the monitor hub, the
//! connection-tracking GC and the REST API on the unix socket.

mod api;
mod cluster;
mod config;
mod daemon;
mod endpoint;
mod error;
mod fqdn;
mod health;
mod hubble;
mod ipam;
mod kubernetes;
mod listen;
mod metrics;
mod monitor;
mod netdev;
mod node;
mod proxy;
mod services;
mod state;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use clap::Parser;
use tokio::{net::UnixListener, signal::unix::SignalKind};

use crate::{config::Config, daemon::Daemon, monitor::MonitorHub};

fn main() -> anyhow::Result<()> {
    // Two malloc arenas: the agent's work is short bursts on a few threads,
    // and per-thread arenas only hold on to freed memory.
    // Blocks of 128 KiB and more come from (and go back to) the kernel
    // directly: left to itself, glibc raises that threshold after the first
    // large free and then keeps such blocks in the heap for good (each new
    // endpoint grew the agent by 4-14 MiB; bench/k8s).
    // SAFETY: called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
    let config = Config::parse();
    config.check()?;
    // Before anything loads an object: every load asks for these sizes.
    datapath::maps::sizes::configure(config.map_sizes())?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(config))
}

async fn run(mut config: Config) -> anyhow::Result<()> {
    if config.ipam == "kubernetes" {
        let node = config.node_name();
        kubernetes::host_scope_ipam::node_pod_cidrs(&config)
            .await
            .and_then(|cidrs| cidrs.configure(&mut config, &node))
            .context("--ipam kubernetes")?;
    }
    let socket = config.socket.clone();
    let gc_every = Duration::from_secs(config.ct_gc_interval.max(1));
    let prometheus = config.prometheus_serve_addr.clone();
    let health_config = health::HealthConfig::from_config(&config);
    let daemon = Daemon::start(config)
        .await
        .context("starting cilium-agent")?;
    if let Some(state) = daemon.k8s() {
        kubernetes::start(daemon.clone(), state.clone())
            .await
            .context("connecting to Kubernetes")?;
    }
    // In CRD mode the API server carries identities, endpoints and nodes
    // (the kubernetes module follows them); the kvstore only services.
    if let Some(allocator) = daemon.cluster().identities.kvstore() {
        tokio::spawn(cluster::watch::identities(daemon.clone()));
        tokio::spawn(cluster::watch::endpoint_ips(daemon.clone()));
        tokio::spawn(cluster::watch::nodes(daemon.clone()));
        // Identities nobody references are removed after a grace period
        // long enough for an agent restart to take its references again.
        tokio::spawn(
            allocator
                .gc_with_grace(Duration::from_secs(300))
                .run(Duration::from_secs(60)),
        );
    }
    tokio::spawn(cluster::watch::services(daemon.clone()));
    let health = health::start(health_config, daemon.clone()).await;
    let registry = Arc::new(metrics::Registry::default());

    let hub = MonitorHub::new();
    let reader = datapath::EventReader::open(daemon.bpf_root())?;
    let (events_hub, events_registry) = (hub.clone(), registry.clone());
    tokio::spawn(async move {
        events_registry.events_reader.success();
        let why = match events_hub.run(reader).await {
            Ok(()) => "the events reader returned".to_string(),
            Err(e) => format!("reading cilium_events: {e}"),
        };
        eprintln!("level=error msg=\"monitor: {why}\"");
        events_registry.events_reader_ended(why);
    });
    if daemon.config().enable_hubble {
        hubble::start(daemon.config(), daemon.clone(), &hub, registry.clone()).await?;
    } else if daemon.config().hubble_ui_address.is_some() {
        eprintln!(
            "level=warning msg=\"--hubble-ui-address ignored: Hubble is off (--enable-hubble)\""
        );
    }
    if let Some(addr) = prometheus {
        let listener = metrics::server::bind(&addr).await?;
        tokio::spawn(metrics::server::serve(
            listener,
            daemon.clone(),
            registry.clone(),
        ));
    }
    tokio::spawn(metrics::pressure::watch(daemon.clone(), registry.clone()));
    tokio::spawn(fqdn_expiry(daemon.clone()));
    if daemon.config().enable_l7_proxy {
        spawn_proxy_supervisor(&daemon, &socket, hub.clone());
    }

    // The sweep walks the whole conntrack map through its own handle, on a
    // thread of its own: API calls never wait for it.
    let mut ct = datapath::maps::CtMap::open(daemon.bpf_root())?;
    let gc_registry = registry.clone();
    std::thread::Builder::new()
        .name("ct-gc".into())
        .spawn(move || loop {
            match ct.gc() {
                Ok(_) => gc_registry.ct_gc.success(),
                Err(e) => {
                    eprintln!("conntrack gc: {e}");
                    gc_registry.ct_gc.failure(e.to_string());
                }
            }
            std::thread::sleep(gc_every);
        })
        .context("starting the conntrack GC thread")?;

    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("listening on {}", socket.display()))?;
    eprintln!("cilium-agent: API listening on {}", socket.display());

    let app = api::router(api::AppState {
        daemon,
        monitor: hub.clone(),
    })
    .layer(axum::Extension(registry))
    .layer(axum::Extension(health.checker()));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Monitor streams never end by themselves.
            hub.close();
        })
        .await?;
    let _ = std::fs::remove_file(&socket);
    eprintln!("cilium-agent: stopped; endpoints keep running on their pinned programs");
    Ok(())
}

/// Names whose TTL ran out lose their IPs, once a second (TTLs count in
/// seconds); the DNS cache is saved when it changed.
async fn fqdn_expiry(daemon: Arc<Daemon>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let daemon = daemon.clone();
        match tokio::task::spawn_blocking(move || daemon.fqdn_tick()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("level=warning msg=\"fqdn: {e}\""),
            Err(e) => eprintln!("level=error msg=\"fqdn: {e}\""),
        }
    }
}

/// Keeps cilium-proxy running and configured; its access log feeds the
/// monitor. The control socket sits next to the API socket.
fn spawn_proxy_supervisor(daemon: &Arc<Daemon>, socket: &std::path::Path, hub: MonitorHub) {
    let dir = socket.parent().unwrap_or(std::path::Path::new("."));
    let state_dir = &daemon.config().state_dir;
    let supervisor = proxy::supervisor::Supervisor {
        socket: dir.join("proxy.sock"),
        binary: daemon
            .config()
            .proxy_binary
            .clone()
            .unwrap_or_else(proxy::supervisor::default_binary),
        log: state_dir.join("cilium-proxy.log"),
        pid_file: state_dir.join("cilium-proxy.pid"),
        args: vec![
            "--tofqdns-dns-reject-response-code".into(),
            daemon.config().tofqdns_dns_reject_response_code.clone(),
            "--tofqdns-proxy-response-max-delay".into(),
            daemon.config().tofqdns_proxy_response_max_delay.clone(),
        ],
        dns_answers: {
            let daemon = daemon.clone();
            Arc::new(move |answers: Vec<proxy::supervisor::DnsAnswer>| {
                for e in daemon.dns_answers(&answers) {
                    eprintln!("level=warning msg=\"fqdn: DNS answer: {e}\"");
                }
            })
        },
    };
    tokio::spawn(supervisor.run(daemon.proxy_desired(), daemon.proxy_health(), hub));
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
