//! The daemon: owns every piece of node state behind one lock and keeps the
//! datapath in line with it. Subsystems compute desired state; the kernel
//! maps are brought to it by diff, so a restart can always resync.

mod addressing;
mod cidr;
mod cluster_events;
mod endpoints;
pub mod flow_policy;
mod fqdn;
mod known;
mod map_sync;
mod maps_view;
pub mod observe;
mod policy_ops;
mod proxy_state;
mod regenerate;
mod service_sync;
mod services;

pub use addressing::Family;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{Ipv4Addr, Ipv6Addr},
    sync::{Arc, Mutex, MutexGuard},
};

use datapath::{BpfRoot, SharedMaps};
use identity::{IdentityAllocator, Scope};
use policy::{EndpointPolicy, Labels, Repository};

use crate::{
    cluster::{keys::NodeRecord, Cluster},
    config::Config,
    endpoint::EndpointRecord,
    error::AgentError,
    ipam::Ipam,
    netdev,
    state::StateDir,
};

pub struct Daemon {
    config: Config,
    root: BpfRoot,
    /// The VXLAN device endpoint programs encapsulate into; 0 = no overlay.
    encap_ifindex: u32,
    state: StateDir,
    /// Kvstore, cluster-wide identities, this node's registration.
    cluster: Cluster,
    /// Writes the API's service changes to the kvstore for every node.
    service_sync: service_sync::ServiceSync,
    /// What cilium-proxy should be configured with; its supervisor watches.
    proxy_desired: tokio::sync::watch::Sender<crate::proxy::DesiredState>,
    proxy_health: Arc<Mutex<crate::proxy::supervisor::ProxyHealth>>,
    /// Whether this process made sure of the proxy's routing rule.
    proxy_routing: std::sync::atomic::AtomicBool,
    /// Pods, namespaces and watch health in Kubernetes mode.
    k8s: Option<Arc<crate::kubernetes::K8sState>>,
    /// Every known node's addresses (IPv4 and IPv6), this node's included:
    /// where NodePorts are served.
    node_addresses: tokio::sync::watch::Sender<BTreeSet<std::net::IpAddr>>,
    /// Learned IPs whose TTL ran out and that went (`cilium_fqdn_gc_deletions_total`).
    fqdn_gc_deletions: std::sync::atomic::AtomicU64,
    inner: Mutex<Inner>,
}

struct Inner {
    maps: SharedMaps,
    /// IPv4 addresses; `None` with `--enable-ipv4=false`.
    ipam: Option<Ipam>,
    /// IPv6 addresses; `None` with `--enable-ipv6=false`.
    ipam6: Option<crate::ipam::v6::Ipam6>,
    /// Identities of endpoint label sets (cluster-wide numbers) known here.
    identities: known::KnownIdentities,
    /// Other nodes' endpoints, as the kvstore reports them.
    remote_ips: BTreeMap<Ipv4Addr, crate::cluster::keys::IpRecord>,
    remote_ips6: BTreeMap<Ipv6Addr, crate::cluster::keys::IpRecord>,
    nodes: BTreeMap<String, NodeRecord>,
    /// Named ports by identity, of this node's endpoints and other nodes':
    /// what egress rules naming ports resolve against.
    peer_ports: policy::resolve::PeerPorts,
    /// Identities of the CIDR prefixes that rules mention (this node only).
    cidr_identities: IdentityAllocator,
    repo: Repository,
    /// The repository's rules compiled once, shared by every endpoint's
    /// policy; rebuilt whenever the rules change.
    compiled_rules: policy::CompiledRules,
    endpoints: BTreeMap<u16, EndpointRecord>,
    /// Each endpoint's rules, compiled: the selector cache that lets an
    /// identity's arrival touch only that identity's keys.
    policies: BTreeMap<u16, EndpointPolicy>,
    /// Proxy ports of the endpoints' L7 listeners.
    proxy_ports: crate::proxy::ports::ProxyPorts,
    services: crate::services::ServiceTable,
    /// What endpoints learned through the DNS proxy, and the rules'
    /// `toFQDNs` selectors claiming those names' IPs.
    fqdn: crate::fqdn::FqdnCache,
    fqdn_selectors: crate::fqdn::Selectors,
    /// The rules' CIDR prefixes, whose labels learned IPs inside them keep
    /// (empty without toFQDNs selectors: nothing to label).
    fqdn_rule_prefixes: BTreeSet<policy::Cidr>,
    /// Learned IP -> its FQDN identity (in `cidr_identities`) and labels.
    fqdn_ips: BTreeMap<std::net::IpAddr, (u32, Labels)>,
    /// The cache changed since it was last saved.
    fqdn_dirty: bool,
}

impl Inner {
    /// Every identity the policy can name: reserved, endpoints', CIDRs'.
    fn all_identities(&self) -> BTreeMap<u32, Labels> {
        let mut all = self.identities.all_labels();
        all.extend(self.cidr_identities.all_labels());
        all
    }

    /// Any identity the policy can name, by number: the lookup for every
    /// view that shows labels, so none of them misses the CIDRs'.
    fn identity(&self, id: u32) -> Option<&identity::Identity> {
        if id >= identity::LOCAL_MIN {
            self.cidr_identities.get(id)
        } else {
            self.identities.get(id)
        }
    }

    fn compile(&self, labels: &Labels) -> EndpointPolicy {
        self.compiled_rules.policy_for(labels)
    }

    /// After every change of `repo`.
    fn recompile_rules(&mut self) {
        self.compiled_rules = policy::CompiledRules::new(self.repo.rules());
        self.fqdn_selectors =
            crate::fqdn::Selectors::new(policy::fqdn::fqdn_selectors(self.repo.rules()));
        self.fqdn_rule_prefixes = fqdn_rule_prefixes(&self.fqdn_selectors, &self.repo);
    }
}

/// The rules' prefixes when some toFQDNs selector may need their labels.
fn fqdn_rule_prefixes(
    selectors: &crate::fqdn::Selectors,
    repo: &Repository,
) -> BTreeSet<policy::Cidr> {
    if selectors.is_empty() {
        BTreeSet::new()
    } else {
        policy::rule_prefixes(repo.rules())
    }
}

impl Daemon {
    /// Opens (or creates) the datapath and the state dir, restores what a
    /// previous run left and resyncs the kernel with it.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Daemon>> {
        let cluster = Cluster::join(&config).await?;
        let root = BpfRoot::prepare(&config.bpf_root)?;
        let state = StateDir::open(&config.state_dir)?;
        let maps = SharedMaps::open_or_create(&root)?;
        crate::node::forwarding::enable(config.enable_ipv6)?;
        let encap_ifindex = match config.tunnel_protocol.as_str() {
            "vxlan" => crate::node::tunnel::attach(&root)?,
            _ => {
                crate::node::tunnel::detach(&root)?;
                0
            }
        };
        crate::node::host_device::attach(
            &root,
            cluster.node_ip(),
            cluster.node.ipv6,
            &config.devices,
            (encap_ifindex != 0).then_some(datapath::host::Overlay {
                port: crate::node::tunnel::PORT,
                ifindex: encap_ifindex,
            }),
        )?;
        if config.enable_socket_lb {
            datapath::sock::attach(&root, &config.cgroup_root)?;
        } else {
            datapath::sock::detach(&root)?;
        }
        let cidr_identities =
            IdentityAllocator::load_scoped(state.cidr_identities_path(), Scope::Local)?;
        let fqdn_ips = fqdn::fqdn_identities(&cidr_identities);
        let repo = state.load_policy()?.unwrap_or_default();
        let ipam = match (cluster.pod_cidr(), state.load_ipam()?) {
            (None, _) => None,
            (Some(range), Some(ipam)) if ipam.range() == range => Some(ipam),
            (Some(range), Some(ipam)) if ipam.allocated().next().is_some() => anyhow::bail!(
                "this node's pod CIDR {range} differs from {} recorded in {} with addresses in use",
                ipam.range(),
                config.state_dir.display()
            ),
            (Some(range), _) => Some(Ipam::new(range)),
        };
        let ipam6 = match (cluster.pod_cidr6(), state.load_ipam6()?) {
            (None, _) => None,
            (Some(range6), Some(ipam6)) if ipam6.range() == range6 => Some(ipam6),
            (Some(range6), Some(ipam6)) if ipam6.allocated().next().is_some() => anyhow::bail!(
                "this node's IPv6 pod range {range6} differs from {} recorded in {} with addresses in use",
                ipam6.range(),
                config.state_dir.display()
            ),
            (Some(range6), _) => Some(crate::ipam::v6::Ipam6::new(range6)),
        };
        let endpoints = state.load_endpoints()?;
        let proxy_ports = state.load_proxy_ports()?.unwrap_or_default();
        let fqdn_cache = state.load_fqdn_cache()?;
        let fqdn_selectors =
            crate::fqdn::Selectors::new(policy::fqdn::fqdn_selectors(repo.rules()));
        let fqdn_rule_prefixes = fqdn_rule_prefixes(&fqdn_selectors, &repo);
        let service_sync = service_sync::ServiceSync::start(cluster.kv.clone());
        let k8s_enabled = config.k8s().enabled();
        let cluster_name = config.cluster_name.clone();
        let own_addresses = [
            Some(cluster.node_ip().into()),
            cluster.node.ipv6.map(Into::into),
        ];
        let node_addresses =
            tokio::sync::watch::channel(own_addresses.into_iter().flatten().collect()).0;
        let daemon = Arc::new(Daemon {
            config,
            root,
            encap_ifindex,
            state,
            cluster,
            service_sync,
            proxy_desired: tokio::sync::watch::channel(Default::default()).0,
            proxy_health: Default::default(),
            proxy_routing: Default::default(),
            k8s: k8s_enabled.then(|| Arc::new(crate::kubernetes::K8sState::new(cluster_name))),
            node_addresses,
            fqdn_gc_deletions: Default::default(),
            inner: Mutex::new(Inner {
                maps,
                ipam,
                ipam6,
                identities: known::KnownIdentities::new(),
                remote_ips: BTreeMap::new(),
                remote_ips6: BTreeMap::new(),
                nodes: BTreeMap::new(),
                cidr_identities,
                compiled_rules: policy::CompiledRules::new(repo.rules()),
                repo,
                endpoints,
                policies: BTreeMap::new(),
                peer_ports: Default::default(),
                proxy_ports,
                services: Default::default(),
                fqdn_rule_prefixes,
                fqdn_ips,
                fqdn_selectors,
                fqdn: fqdn_cache,
                fqdn_dirty: false,
            }),
        });
        daemon.restore().await?;
        Ok(daemon)
    }

    pub fn bpf_root(&self) -> &BpfRoot {
        &self.root
    }

    /// Kubernetes mode's state; `None` without an API server.
    pub fn k8s(&self) -> Option<&Arc<crate::kubernetes::K8sState>> {
        self.k8s.as_ref()
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-attaches restored endpoints (atomically replacing the programs
    /// still running from the previous incarnation), drops endpoints whose
    /// interface vanished meanwhile, and resyncs every map.
    async fn restore(&self) -> anyhow::Result<()> {
        // Identity references live in this process: take them again. With
        // the kvstore unreachable, an endpoint keeps its recorded number.
        let labels: Vec<(u16, u32, Labels)> = self
            .lock()
            .endpoints
            .values()
            .map(|ep| (ep.id, ep.identity, ep.labels.clone()))
            .collect();
        let mut restored = Vec::new();
        for (ep_id, recorded, labels) in labels {
            let identity = match self.cluster.identities.allocate(&labels).await {
                Ok((identity, _)) => identity,
                Err(e) => {
                    eprintln!("endpoint {ep_id}: keeping identity {recorded}: {e}");
                    identity::Identity {
                        id: recorded,
                        labels,
                    }
                }
            };
            restored.push((ep_id, identity));
        }
        let released = self.restore_locked(restored)?;
        for id in released {
            let _ = self.cluster.identities.release(id).await;
        }
        Ok(())
    }

    /// The synchronous part of [`Daemon::restore`]; returns the identities
    /// of endpoints that were gone, for the caller to release.
    fn restore_locked(&self, restored: Vec<(u16, identity::Identity)>) -> anyhow::Result<Vec<u32>> {
        let mut inner = self.lock();
        for (ep_id, identity) in restored {
            if let Some(ep) = inner.endpoints.get_mut(&ep_id) {
                ep.identity = identity.id;
            }
            inner.identities.insert(identity);
        }
        let ids: Vec<u16> = inner.endpoints.keys().copied().collect();
        let mut released = Vec::new();
        for id in ids {
            let ep = inner.endpoints[&id].clone();
            let gone = netdev::ifindex(&ep.interface_name) != Some(ep.interface_index);
            if gone {
                eprintln!(
                    "endpoint {id}: interface {} is gone, removing",
                    ep.interface_name
                );
                inner.endpoints.remove(&id);
                let _ = datapath::endpoint::remove_endpoint(&self.root, id);
                self.unpublish_endpoint_ip(&ep);
                released.push(ep.identity);
                continue;
            }
            let config = self.endpoint_config(&inner, &ep);
            let mut prog = datapath::EndpointProgram::load_with(&self.root, id, &config)?;
            prog.attach(&self.root, &ep.interface_name)?;
        }
        // A crash between attaching and persisting leaves pins nobody owns.
        for id in datapath::endpoint::pinned_endpoints(&self.root) {
            if !inner.endpoints.contains_key(&id) {
                eprintln!("endpoint {id}: pinned but unknown to the state dir, removing");
                datapath::endpoint::remove_endpoint(&self.root, id)?;
            }
        }
        self.update_cidr_identities(&mut inner)?;
        // Names learned before the restart keep their IPs' identities.
        let changes = self.update_fqdn_identities(&mut inner, None)?;
        self.apply_fqdn_changes(&mut inner, changes, false)?;
        self.restore_services(&mut inner)?;
        self.sync_endpoint_maps(&mut inner)?;
        self.regenerate_all(&mut inner)?;
        self.persist(&inner)?;
        for ep in inner.endpoints.values() {
            self.publish_endpoint_ip(ep);
        }
        Ok(released)
    }

    /// Tells the other nodes where this endpoint lives and who it is.
    /// Takes an endpoint's address back from the cluster.
    fn unpublish_endpoint_ip(&self, ep: &EndpointRecord) {
        for ip in ep.addresses() {
            self.cluster
                .publisher
                .delete(crate::cluster::keys::ip_key(ip));
        }
        if let (Some(k8s), Some((namespace, pod))) = (self.crd_k8s(), ep.pod_name.split_once('/')) {
            k8s.endpoints.delete(namespace, pod);
        }
    }

    /// Kubernetes state, when the cluster's state goes through the CRDs.
    fn crd_k8s(&self) -> Option<&Arc<crate::kubernetes::K8sState>> {
        self.k8s
            .as_ref()
            .filter(|_| self.cluster.identities.crd().is_some())
    }

    fn publish_endpoint_ip(&self, ep: &EndpointRecord) {
        if let (Some(k8s), Some((namespace, pod))) = (self.crd_k8s(), ep.pod_name.split_once('/')) {
            let key = k8s::PodKey {
                namespace: namespace.to_string(),
                name: pod.to_string(),
            };
            let view = k8s::cilium_objects::EndpointView {
                endpoint_id: ep.id,
                identity: ep.identity,
                labels: ep.labels.to_strings(),
                ipv4: ep.ipv4,
                ipv6: ep.ipv6,
                node_ip: self.cluster.node_ip(),
                named_ports: ep
                    .to_model(&ep.labels)
                    .status
                    .named_ports
                    .into_iter()
                    .map(|p| (p.name, p.port, p.protocol))
                    .collect(),
            };
            k8s.endpoints
                .upsert(namespace, pod, k8s.pods.uid(&key).as_deref(), &view);
        }
        let record = crate::cluster::keys::IpRecord {
            identity: ep.identity,
            host_ip: self.cluster.node_ip(),
            named_ports: ep.named_ports.clone(),
        };
        let value = serde_json::to_vec(&record).expect("serializable");
        for ip in ep.addresses() {
            self.cluster
                .publisher
                .put(crate::cluster::keys::ip_key(ip), value.clone());
        }
    }

    /// What cilium_ipcache should hold: (address, prefix length) ->
    /// (identity, tunnel endpoint).
    fn desired_ipcache(&self, inner: &Inner) -> BTreeMap<(Ipv4Addr, u32), (u32, Ipv4Addr)> {
        let local = Ipv4Addr::UNSPECIFIED;
        let mut want_ipcache: BTreeMap<(Ipv4Addr, u32), (u32, Ipv4Addr)> = BTreeMap::new();
        want_ipcache.insert((Ipv4Addr::UNSPECIFIED, 0), (identity::WORLD, local));
        for node in inner
            .nodes
            .values()
            .filter(|n| n.name != self.cluster.node.name)
        {
            want_ipcache.insert((node.ipv4, 32), (identity::REMOTE_NODE, local));
        }
        for (ip, record) in &inner.remote_ips {
            want_ipcache.insert((*ip, 32), (record.identity, record.host_ip));
        }
        for ip in netdev::host_addresses() {
            want_ipcache.insert((ip, 32), (identity::HOST, local));
        }
        for ep in inner.endpoints.values() {
            if let Some(ip) = ep.ipv4 {
                want_ipcache.insert((ip, 32), (ep.identity, local));
            }
        }
        for (prefix, id) in cidr::prefix_identities(inner) {
            want_ipcache.insert((prefix.addr(), prefix.prefix_len() as u32), (id, local));
        }
        for (ip, (id, _)) in &inner.fqdn_ips {
            if let std::net::IpAddr::V4(ip) = ip {
                want_ipcache.insert((*ip, 32), (*id, local));
            }
        }
        want_ipcache
    }

    /// Makes cilium_lxc and cilium_ipcache hold exactly the local endpoints,
    /// the host's own addresses and the world default.
    fn sync_endpoint_maps(&self, inner: &mut Inner) -> Result<(), AgentError> {
        let want_ipcache = self.desired_ipcache(inner);
        let want_lxc: BTreeMap<_, _> = inner
            .endpoints
            .values()
            .filter_map(|ep| Some((ep.ipv4?, endpoints::lxc_info(ep))))
            .collect();
        let maps = &mut inner.maps;
        map_sync::sync(&mut maps.ipcache, &mut maps.lxc, want_ipcache, want_lxc)?;
        self.sync_endpoint_maps6(inner)?;
        self.publish_proxy_state(inner);
        Ok(())
    }

    /// Recompiles every endpoint's policy after the rules changed, and
    /// regenerates those whose compiled policy is not what it was: a rule
    /// that selects none of an endpoint's peers or itself leaves it alone.
    /// Egress rules naming ports follow the named ports of every
    /// identity's endpoints: when those change, the endpoints with such
    /// rules are regenerated.
    fn refresh_peer_ports(&self, inner: &mut Inner) {
        let mut now: BTreeMap<u32, policy::ports::NamedPorts> = BTreeMap::new();
        let local = inner
            .endpoints
            .values()
            .map(|ep| (ep.identity, &ep.named_ports));
        let remote = inner
            .remote_ips
            .values()
            .map(|r| (r.identity, &r.named_ports));
        for (identity, ports) in local.chain(remote).filter(|(_, p)| !p.is_empty()) {
            let entry = now.entry(identity).or_default();
            for (name, port) in ports {
                entry.entry(name.clone()).or_insert(*port);
            }
        }
        if *inner.peer_ports == now {
            return;
        }
        inner.peer_ports = Arc::new(now);
        if let Err(e) = self.regenerate_changed(inner, false) {
            eprintln!("level=warning msg=\"regenerating after named ports changed: {e}\"");
        }
    }

    fn regenerate_all(&self, inner: &mut Inner) -> Result<(), AgentError> {
        self.regenerate_changed(inner, true)
    }

    fn regenerate_changed(&self, inner: &mut Inner, all: bool) -> Result<(), AgentError> {
        let mut selectors = policy::SelectorCache::new(inner.all_identities());
        let revision = inner.repo.revision();
        let mut failed = Vec::new();
        let mut compiled: BTreeMap<u16, EndpointPolicy> = BTreeMap::new();
        let Inner {
            policies,
            endpoints,
            compiled_rules,
            proxy_ports,
            peer_ports,
            ..
        } = inner;
        for ep in endpoints.values() {
            let policy = compiled_rules
                .policy_for(&ep.labels)
                .with_named_ports(&ep.named_ports)
                .with_peer_named_ports(peer_ports);
            match self.with_proxy_ports(proxy_ports, policy, ep.id) {
                Ok(policy) => {
                    compiled.insert(ep.id, policy);
                }
                Err(e) => failed.push(format!("endpoint {}: {e}", ep.id)),
            }
        }
        let mut plans = Vec::new();
        for ep in endpoints.values_mut() {
            let Some(policy) = compiled.get(&ep.id) else {
                continue;
            };
            if !all && policies.get(&ep.id) == Some(policy) {
                ep.policy_revision = revision;
                continue;
            }
            plans.push(regenerate::Plan::new(ep.id, policy, &mut selectors));
        }
        for (plan, result) in regenerate::write_all(&self.root, plans) {
            match result {
                Ok(()) => {
                    if let Some(ep) = endpoints.get_mut(&plan.endpoint) {
                        plan.realized(ep, revision);
                    }
                }
                Err(e) => failed.push(format!("endpoint {}: {e}", plan.endpoint)),
            }
        }
        *policies = compiled;
        self.publish_proxy_state(inner);
        join_failures(failed)
    }

    /// A new identity exists: only its keys are added, endpoint by endpoint.
    fn identity_added(
        &self,
        inner: &Inner,
        identity: u32,
        labels: &Labels,
    ) -> Result<(), AgentError> {
        self.apply_identity(inner, identity, labels, true)
    }

    /// An identity is gone: only its keys are removed.
    fn identity_removed(
        &self,
        inner: &Inner,
        identity: u32,
        labels: &Labels,
    ) -> Result<(), AgentError> {
        self.apply_identity(inner, identity, labels, false)
    }

    fn apply_identity(
        &self,
        inner: &Inner,
        identity: u32,
        labels: &Labels,
        added: bool,
    ) -> Result<(), AgentError> {
        let mut failed = Vec::new();
        for (id, policy) in &inner.policies {
            if let Err(e) =
                regenerate::apply_identity(&self.root, policy, *id, identity, labels, added)
            {
                failed.push(format!("endpoint {id}: {e}"));
            }
        }
        self.publish_proxy_state(inner);
        join_failures(failed)
    }

    fn persist(&self, inner: &Inner) -> Result<(), AgentError> {
        self.persist_endpoints(inner)?;
        self.persist_policy(inner)
    }

    /// After an endpoint or address changed.
    fn persist_endpoints(&self, inner: &Inner) -> Result<(), AgentError> {
        self.state.save_endpoints(&inner.endpoints)?;
        if let Some(ipam) = &inner.ipam {
            self.state.save_ipam(ipam)?;
        }
        if let Some(ipam6) = &inner.ipam6 {
            self.state.save_ipam6(ipam6)?;
        }
        self.state.save_proxy_ports(&inner.proxy_ports)?;
        Ok(())
    }

    /// After the rules changed.
    fn persist_policy(&self, inner: &Inner) -> Result<(), AgentError> {
        self.state.save_policy(&inner.repo)?;
        self.state.save_proxy_ports(&inner.proxy_ports)?;
        inner
            .cidr_identities
            .save(self.state.cidr_identities_path())?;
        Ok(())
    }

    pub fn status(&self) -> api::models::StatusResponse {
        use api::models::*;
        let inner = self.lock();
        let ok = |msg: &str| Status {
            state: "Ok".into(),
            msg: msg.into(),
        };
        StatusResponse {
            cilium: ok(""),
            kvstore: ok(self.config.kvstore.as_str()),
            ipam: IpamStatus {
                ipv4: inner
                    .ipam
                    .iter()
                    .flat_map(|ipam| ipam.allocated())
                    .map(|(ip, _)| ip.to_string())
                    .collect(),
                alloc_range: inner
                    .ipam
                    .as_ref()
                    .map(|ipam| ipam.range().to_string())
                    .unwrap_or_default(),
                capacity: inner.ipam.as_ref().map_or(0, |ipam| ipam.capacity()),
                ipv6: inner
                    .ipam6
                    .iter()
                    .flat_map(|ipam6| ipam6.allocated())
                    .map(|(ip, _)| ip.to_string())
                    .collect(),
                ipv6_alloc_range: inner
                    .ipam6
                    .as_ref()
                    .map(|ipam6| ipam6.range().to_string())
                    .unwrap_or_default(),
            },
            policy: PolicyStatus {
                revision: inner.repo.revision(),
                rules: inner.repo.rules().len() as u32,
            },
            endpoints: inner.endpoints.len() as u32,
            // Datapath, maps, proxy and controllers: api/status.rs fills them.
            ..Default::default()
        }
    }

    pub fn daemon_config(&self) -> api::models::DaemonConfiguration {
        use api::models::*;
        let addressing = self.node_addressing(&self.lock());
        DaemonConfiguration {
            status: DaemonConfigurationStatus {
                addressing,
                kvstore: self.config.kvstore.clone(),
                bpf_root: self.config.bpf_root.display().to_string(),
                state_dir: self.config.state_dir.display().to_string(),
                node_name: self.config.node_name(),
            },
        }
    }

    pub fn identity_list(&self) -> Vec<api::models::Identity> {
        let inner = self.lock();
        let mut list = inner.identities.list();
        list.extend(
            inner
                .cidr_identities
                .list()
                .into_iter()
                .filter(|i| i.id >= identity::LOCAL_MIN),
        );
        list.iter().map(identity_model).collect()
    }

    pub fn identity_get(&self, id: &str) -> Result<api::models::Identity, AgentError> {
        let num: u32 = id
            .parse()
            .map_err(|_| AgentError::BadRequest(format!("identity {id:?} is not a number")))?;
        self.lock()
            .identity(num)
            .map(identity_model)
            .ok_or_else(|| AgentError::NotFound(format!("identity {num} not found")))
    }
}

fn join_failures(failed: Vec<String>) -> Result<(), AgentError> {
    if failed.is_empty() {
        Ok(())
    } else {
        Err(AgentError::Internal(failed.join("; ")))
    }
}

fn identity_model(i: &identity::Identity) -> api::models::Identity {
    api::models::Identity {
        id: i.id,
        labels: i.labels.to_strings(),
        labels_sha256: identity::labels_sha256(&i.labels),
    }
}
