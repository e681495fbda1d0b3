//! Hubble in the agent (`--enable-hubble`): one more monitor-hub
//! subscriber that names each event, turns it into a flow and stores it in
//! the hubble crate's ring, and the Observer gRPC API on
//! `--hubble-socket-path` (and `--hubble-listen-address`). Each stored flow
//! is counted for `hubble_flows_processed_total` and `hubble_drop_total`.
//! With `--hubble-ui-address`, the web UI (`ui`) reads the same ring.
//!
//! While Hubble runs, its subscription keeps the datapath's events switched
//! on (the hub's `events_wanted` follows its listeners); with Hubble off,
//! nothing here exists and the datapath builds no events for it.

mod dns_answers;
mod rules;
mod services;
mod sock_sources;
mod ui;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hubble::{FlowRing, Observer, PodRef, Pods, Sides};
use tokio::sync::broadcast::error::RecvError;

use crate::api::monitor_stream::{event_endpoints, identity_labels};
use crate::config::Config;
use crate::daemon::{observe::MonitorContext, Daemon};
use crate::metrics::Registry;
use crate::monitor::MonitorHub;

/// How long the view of identities, endpoints and pods is trusted.
const CONTEXT_TTL: Duration = Duration::from_secs(2);
/// An unknown identity or endpoint refreshes it, at most this often.
const MISS_REFRESH: Duration = Duration::from_millis(100);

/// Binds the servers (a taken address fails the start) and starts storing
/// flows.
pub async fn start(
    config: &Config,
    daemon: Arc<Daemon>,
    hub: &MonitorHub,
    registry: Arc<Registry>,
) -> anyhow::Result<()> {
    let ring = Arc::new(FlowRing::new(config.hubble_event_buffer_capacity));
    let observer = Observer::new(ring.clone(), config.node_name());
    let tcp = match &config.hubble_listen_address {
        Some(addr) => Some(crate::listen::bind("--hubble-listen-address", addr).await?),
        None => None,
    };
    let ui = match &config.hubble_ui_address {
        Some(addr) => Some(crate::listen::bind("--hubble-ui-address", addr).await?),
        None => None,
    };
    let socket = config.hubble_socket_path.clone();
    let unix_observer = observer.clone();
    tokio::spawn(async move {
        if let Err(e) = hubble::serve_unix(unix_observer, &socket).await {
            eprintln!(
                "level=error msg=\"hubble: serving {}: {e}\"",
                socket.display()
            );
        }
    });
    eprintln!(
        "cilium-agent: Hubble Observer API on unix://{}",
        config.hubble_socket_path.display()
    );
    if let Some(listener) = tcp {
        if let Ok(addr) = listener.local_addr() {
            eprintln!("cilium-agent: Hubble Observer API on {addr}");
        }
        tokio::spawn(async move {
            if let Err(e) = hubble::serve_tcp(observer, listener).await {
                eprintln!("level=error msg=\"hubble: serving TCP: {e}\"");
            }
        });
    }
    if let Some(listener) = ui {
        if let Ok(addr) = listener.local_addr() {
            eprintln!("cilium-agent: Hubble UI on http://{addr}/");
        }
        let ring = ring.clone();
        tokio::spawn(async move {
            if let Err(e) = ui::serve(listener, ring).await {
                eprintln!("level=error msg=\"hubble: serving the UI: {e}\"");
            }
        });
    }
    let rx = hub.subscribe();
    tokio::spawn(store_flows(rx, daemon, ring, registry, config.node_name()));
    Ok(())
}

async fn store_flows(
    mut rx: tokio::sync::broadcast::Receiver<Arc<api::models::MonitorEvent>>,
    daemon: Arc<Daemon>,
    ring: Arc<FlowRing>,
    registry: Arc<Registry>,
    node_name: String,
) {
    let mut rules = rules::RuleNamer::new(daemon.clone());
    let mut services = services::ServiceNamer::new(daemon.clone());
    let mut sock_sources = sock_sources::SockSources::new(daemon.clone());
    let mut view = View::new(daemon);
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                eprintln!("level=warning msg=\"hubble: {n} events lost (flow store fell behind)\"");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        // A socket LB translation names no source until its socket's
        // endpoint is found; none found, no flow.
        let ev = match ev.kind.as_str() {
            api::models::monitor_kind::TRACE_SOCK => match sock_sources.resolve(&ev) {
                Some(named) => Arc::new(named),
                None => continue,
            },
            _ => ev,
        };
        if let Some(mut flow) = view.flow(&ev, &node_name, SystemTime::now()) {
            rules.annotate(&ev, &mut flow);
            dns_answers::from_server(&mut flow);
            services.annotate(&mut flow);
            registry.hubble_flows.observe(&flow);
            ring.push(flow);
        }
    }
}

/// Identities, endpoints and pods from a snapshot refreshed now and then,
/// so the daemon's lock is taken rarely, not per event.
struct View {
    daemon: Arc<Daemon>,
    context: MonitorContext,
    pods: Pods,
    taken: Instant,
}

impl View {
    fn new(daemon: Arc<Daemon>) -> Self {
        let (context, pods) = snapshot(&daemon);
        View {
            daemon,
            context,
            pods,
            taken: Instant::now(),
        }
    }

    fn refresh_if(&mut self, older_than: Duration) {
        if self.taken.elapsed() >= older_than {
            (self.context, self.pods) = snapshot(&self.daemon);
            self.taken = Instant::now();
        }
    }

    /// The event's flow, its sides named from the view. The labels are
    /// copied once, into the flow, never into a named copy of the event.
    fn flow(
        &mut self,
        ev: &api::models::MonitorEvent,
        node_name: &str,
        received: SystemTime,
    ) -> Option<hubble::proto::flow::Flow> {
        self.refresh_if(CONTEXT_TTL);
        let known =
            |ctx: &MonitorContext, id: u32| id == 0 || ctx.identity_labels.contains_key(&id);
        if !known(&self.context, ev.src_identity)
            || !known(&self.context, ev.dst_identity)
            || (ev.endpoint != 0 && !self.pods.contains_key(&ev.endpoint))
        {
            self.refresh_if(MISS_REFRESH);
        }
        let (src_endpoint, dst_endpoint) = event_endpoints(&self.context, ev);
        let sides = Sides {
            src_labels: identity_labels(&self.context, ev.src_identity),
            dst_labels: identity_labels(&self.context, ev.dst_identity),
            src_endpoint,
            dst_endpoint,
        };
        hubble::to_flow_with(ev, sides, &self.pods, node_name, received)
    }
}

fn snapshot(daemon: &Daemon) -> (MonitorContext, Pods) {
    let pods = daemon
        .endpoint_list()
        .into_iter()
        .map(|ep| {
            let ids = ep.status.external_identifiers;
            let pod = match ids.pod_name.split_once('/') {
                Some((ns, name)) => PodRef {
                    namespace: ns.into(),
                    name: name.into(),
                },
                // Not a Kubernetes pod: its container's name.
                None => PodRef {
                    namespace: String::new(),
                    name: ids.container_name,
                },
            };
            (ep.id, pod)
        })
        .collect();
    (daemon.monitor_context(), pods)
}
