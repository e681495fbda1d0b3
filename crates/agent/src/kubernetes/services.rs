//! Kubernetes Services as the node's load balancer (kube-proxy's job):
//! every ClusterIP, NodePort (on every node's address), external IP and
//! load-balancer IP frontend balanced over the Service's ready endpoints,
//! from the Services and EndpointSlices watches. A change reaches the LB
//! maps as soon as the watch delivers it; a node joining or leaving moves
//! the NodePorts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use api::models::{BackendAddress, FrontendAddress, ServiceFlags, ServiceSpec};
use futures_util::StreamExt;
use k8s::api::{EndpointSlice, Service};
use k8s::kube::runtime::watcher;
use k8s::kube::{Api, ResourceExt};
use k8s::services::{lb_entries, Balancing, LbEntry, SERVICE_NAME_LABEL};
use k8s::Change;

use super::K8sState;
use crate::daemon::Daemon;
use crate::services::host_port;

/// Service ids this node gives Kubernetes frontends; the API's own
/// services use lower numbers.
const FIRST_ID: u16 = 0xC000;

type Key = (String, String);
type Frontend = (IpAddr, u16, String);

// One event at a time passes through: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Event {
    Service(Change<Service>),
    Slice(Change<EndpointSlice>),
    NodeAddresses(BTreeSet<IpAddr>),
}

pub async fn watch(daemon: Arc<Daemon>, state: Arc<K8sState>, client: k8s::Client) {
    state.status.watching("services");
    state.status.watching("endpointslices");
    let services = k8s::watch(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .map(Event::Service);
    let slices = k8s::watch(
        Api::<EndpointSlice>::all(client),
        watcher::Config::default(),
    )
    .map(Event::Slice);
    let node_addresses =
        futures_util::stream::unfold(daemon.watch_node_addresses(), |mut rx| async move {
            rx.changed().await.ok()?;
            let now = rx.borrow_and_update().clone();
            Some((Event::NodeAddresses(now), rx))
        });
    let events = futures_util::stream::select(
        futures_util::stream::select(services, slices),
        node_addresses,
    );
    futures_util::pin_mut!(events);
    let mut lb = Balancer::restore(&daemon);
    let mut synced = (false, false);
    while let Some(event) = events.next().await {
        let touched = match event {
            Event::Service(Change::Applied(svc)) => {
                let key = (svc.namespace().unwrap_or_default(), svc.name_any());
                lb.services.insert(key.clone(), svc);
                Some(key)
            }
            Event::Service(Change::Deleted(svc)) => {
                let key = (svc.namespace().unwrap_or_default(), svc.name_any());
                lb.services.remove(&key);
                Some(key)
            }
            Event::Slice(Change::Applied(slice)) => {
                let key = slice_key(&slice);
                lb.slices.insert(
                    (slice.namespace().unwrap_or_default(), slice.name_any()),
                    slice,
                );
                key
            }
            Event::Slice(Change::Deleted(slice)) => {
                let key = slice_key(&slice);
                lb.slices
                    .remove(&(slice.namespace().unwrap_or_default(), slice.name_any()));
                key
            }
            Event::Service(Change::Synced) => {
                synced.0 = true;
                state.status.synced("services");
                None
            }
            Event::Slice(Change::Synced) => {
                synced.1 = true;
                state.status.synced("endpointslices");
                None
            }
            Event::Service(Change::Lost(e)) => {
                state.status.lost("services", e);
                None
            }
            Event::Slice(Change::Lost(e)) => {
                state.status.lost("endpointslices", e);
                None
            }
            Event::NodeAddresses(addresses) => {
                lb.node_addresses = addresses;
                let keys: Vec<Key> = lb.services.keys().cloned().collect();
                for key in &keys {
                    lb.sync(&daemon, key);
                }
                None
            }
        };
        match touched {
            Some(key) => lb.sync(&daemon, &key),
            // Both lists complete: frontends of Services deleted while
            // this agent was away go.
            None if synced == (true, true) => lb.sync_all(&daemon),
            None => {}
        }
    }
}

fn slice_key(slice: &EndpointSlice) -> Option<Key> {
    let service = slice.labels().get(SERVICE_NAME_LABEL)?;
    Some((slice.namespace().unwrap_or_default(), service.clone()))
}

/// What the watches said, and which service ids hold which frontends.
struct Balancer {
    services: BTreeMap<Key, Service>,
    slices: BTreeMap<Key, EndpointSlice>,
    node_name: String,
    node_addresses: BTreeSet<IpAddr>,
    ids: BTreeMap<Frontend, u16>,
    /// The frontends each Service has in the datapath.
    applied: BTreeMap<Key, BTreeSet<Frontend>>,
}

impl Balancer {
    /// Picks up the frontends a previous run of the agent programmed.
    fn restore(daemon: &Daemon) -> Balancer {
        let ids = daemon
            .service_list()
            .into_iter()
            .filter(|svc| svc.spec.id >= u32::from(FIRST_ID))
            .filter_map(|svc| {
                let f = &svc.spec.frontend_address;
                let ip = f.ip.parse().ok()?;
                Some(((ip, f.port, f.protocol.clone()), svc.spec.id as u16))
            })
            .collect();
        Balancer {
            services: BTreeMap::new(),
            slices: BTreeMap::new(),
            node_name: daemon.cluster().node.name.clone(),
            node_addresses: daemon.watch_node_addresses().borrow().clone(),
            ids,
            applied: BTreeMap::new(),
        }
    }

    fn desired(&self, key: &Key) -> Vec<LbEntry> {
        let Some(service) = self.services.get(key) else {
            return Vec::new();
        };
        let slices: Vec<&EndpointSlice> = self
            .slices
            .iter()
            .filter(|((ns, _), slice)| {
                ns == &key.0 && slice.labels().get(SERVICE_NAME_LABEL) == Some(&key.1)
            })
            .map(|(_, slice)| slice)
            .collect();
        let node = Balancing {
            node_name: &self.node_name,
            node_addresses: &self.node_addresses,
        };
        lb_entries(service, &slices, node)
    }

    /// Brings one Service's frontends in the datapath to what it says.
    fn sync(&mut self, daemon: &Daemon, key: &Key) {
        let desired = self.desired(key);
        // This Service's frontends that are no longer wanted (a port or
        // cluster IP removed, the Service gone, no ready endpoint left).
        let owned: Vec<Frontend> = self.owned(key);
        for frontend in owned {
            let wanted = desired.iter().any(|e| {
                (e.frontend, e.port, e.protocol.clone()) == frontend && !e.backends.is_empty()
            });
            if !wanted {
                self.remove(daemon, &frontend);
            }
        }
        for entry in desired.into_iter().filter(|e| !e.backends.is_empty()) {
            self.upsert(daemon, key, entry);
        }
    }

    fn sync_all(&mut self, daemon: &Daemon) {
        let wanted: Vec<Frontend> = self
            .services
            .keys()
            .flat_map(|key| self.desired(key))
            .filter(|e| !e.backends.is_empty())
            .map(|e| (e.frontend, e.port, e.protocol))
            .collect();
        let stale: Vec<Frontend> = self
            .ids
            .keys()
            .filter(|f| !wanted.contains(f))
            .cloned()
            .collect();
        for frontend in stale {
            self.remove(daemon, &frontend);
        }
    }

    /// Frontends programmed for `key`.
    fn owned(&self, key: &Key) -> Vec<Frontend> {
        self.applied
            .get(key)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn upsert(&mut self, daemon: &Daemon, key: &Key, entry: LbEntry) {
        let frontend = (entry.frontend, entry.port, entry.protocol.clone());
        let id = match self.ids.get(&frontend) {
            Some(id) => *id,
            None => match self.free_id() {
                Some(id) => id,
                None => {
                    eprintln!(
                        "level=warning msg=\"service {}/{}: no free service id\"",
                        key.0, key.1
                    );
                    return;
                }
            },
        };
        let spec = ServiceSpec {
            id: u32::from(id),
            frontend_address: FrontendAddress {
                ip: entry.frontend.to_string(),
                port: entry.port,
                protocol: entry.protocol.clone(),
            },
            backend_addresses: entry
                .backends
                .iter()
                .map(|(ip, port)| BackendAddress {
                    ip: ip.to_string(),
                    port: *port,
                    ..Default::default()
                })
                .collect(),
            flags: ServiceFlags {
                kind: entry.kind,
                name: key.1.clone(),
                namespace: key.0.clone(),
            },
        };
        match daemon.service_upsert_local(id, spec) {
            Ok(()) => {
                self.ids.insert(frontend.clone(), id);
                self.applied
                    .entry(key.clone())
                    .or_default()
                    .insert(frontend);
            }
            Err(e) => eprintln!(
                "level=warning msg=\"service {}/{} {}: {e}\"",
                key.0,
                key.1,
                host_port(entry.frontend, entry.port)
            ),
        }
    }

    fn remove(&mut self, daemon: &Daemon, frontend: &Frontend) {
        for set in self.applied.values_mut() {
            set.remove(frontend);
        }
        if let Some(id) = self.ids.remove(frontend) {
            if let Err(e) = daemon.service_remove_local(id) {
                eprintln!(
                    "level=warning msg=\"service frontend {}: {e}\"",
                    host_port(frontend.0, frontend.1)
                );
            }
        }
    }

    fn free_id(&self) -> Option<u16> {
        let used: BTreeSet<u16> = self.ids.values().copied().collect();
        (FIRST_ID..=u16::MAX).find(|id| !used.contains(id))
    }
}
