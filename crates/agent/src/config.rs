//! Command-line flags of cilium-agent, named as in Cilium.

use std::path::PathBuf;

use clap::Parser;
use datapath::maps::sizes;

#[derive(Debug, Clone, Parser)]
#[command(name = "cilium-agent", version, about = "cilium-rs node agent")]
pub struct Config {
    /// Unix socket the REST API listens on.
    #[arg(long, default_value = api::DEFAULT_SOCKET)]
    pub socket: PathBuf,

    /// Directory where endpoints, identities, IPAM and policy are persisted.
    #[arg(long, default_value = "/var/run/cilium/state")]
    pub state_dir: PathBuf,

    /// bpffs directory holding the pinned maps and links.
    #[arg(long, default_value = "/sys/fs/bpf/cilium")]
    pub bpf_root: PathBuf,

    /// This node's pod CIDR (default 10.200.0.0/16 unless a cluster pool is set).
    #[arg(long)]
    pub ipv4_range: Option<String>,

    /// Pod CIDR pool of the cluster: each node claims a block of it.
    #[arg(long)]
    pub cluster_pool_ipv4_cidr: Option<String>,

    /// Size of the block each node claims from --cluster-pool-ipv4-cidr.
    #[arg(long, default_value_t = 24)]
    pub cluster_pool_ipv4_mask_size: u8,

    /// Give every endpoint an IPv4 address (Cilium's default). Off: no IPv4
    /// IPAM, endpoints are IPv6-only (needs --enable-ipv6).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_ipv4: bool,

    /// Give every endpoint an IPv6 address (Cilium's default).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_ipv6: bool,

    /// This node's IPv6 pod range; `auto` (Cilium's default) is the /96 of
    /// f00d::/64 that carries the node's IPv4 address in bits 64-95.
    #[arg(long, default_value = "auto")]
    pub ipv6_range: String,

    /// IPv6 pod CIDR pool of the cluster: each node claims a block of it.
    #[arg(long)]
    pub cluster_pool_ipv6_cidr: Option<String>,

    /// Size of the block each node claims from --cluster-pool-ipv6-cidr.
    #[arg(long, default_value_t = 112)]
    pub cluster_pool_ipv6_mask_size: u8,

    /// Key-value store: "embedded" (in --state-dir) or "etcd".
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "etcd"])]
    pub kvstore: String,

    /// Kvstore options, e.g. etcd.endpoints=http://127.0.0.1:2379[,…].
    #[arg(long)]
    pub kvstore_opt: Vec<String>,

    /// The address other nodes reach this one at (default: the source
    /// address of the default route).
    #[arg(long)]
    pub node_ip: Option<std::net::Ipv4Addr>,

    /// This node's own IPv6 address (Cilium's --ipv6-node); `auto`: the
    /// first global IPv6 address on the device carrying the node's IPv4
    /// address, none if it has none. Ignored with --enable-ipv6=false.
    #[arg(long, default_value = "auto")]
    pub ipv6_node: String,

    /// Devices bpf_host attaches to besides the one carrying --node-ip
    /// (comma-separated): where clients from outside the cluster arrive.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,

    /// Name of this node.
    #[arg(long, env = "CILIUM_NODE_NAME")]
    pub node_name: Option<String>,

    /// Encapsulation between nodes: "vxlan" (identity in the VNI) or "disabled".
    #[arg(long, default_value = "vxlan", value_parser = ["vxlan", "disabled"])]
    pub tunnel_protocol: String,

    /// Balance services at the socket level (connect/sendmsg) for processes
    /// in --cgroup-root and below.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_socket_lb: bool,

    /// cgroup v2 directory the socket load balancer attaches to.
    #[arg(long, default_value = "/sys/fs/cgroup/unified")]
    pub cgroup_root: PathBuf,

    /// Serve Prometheus metrics on [HOST]:PORT (Cilium's port is 9962,
    /// e.g. ":9962"); off when not given.
    #[arg(long)]
    pub prometheus_serve_addr: Option<String>,

    /// Enforce L7 rules through cilium-proxy (off: L7 rules are not
    /// enforced, their L3/L4 part still is).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_l7_proxy: bool,

    /// The cilium-proxy executable (default: next to cilium-agent, else PATH).
    #[arg(long)]
    pub proxy_binary: Option<PathBuf>,

    /// Connection-tracking entries for TCP. Cilium keeps TCP and other
    /// protocols in two maps; here one map (cilium_ct4_global) holds both and
    /// its size is this plus --bpf-ct-global-any-max.
    #[arg(long, default_value_t = DEFAULT_CT_HALF)]
    pub bpf_ct_global_tcp_max: u32,

    /// Connection-tracking entries for protocols other than TCP (added to
    /// --bpf-ct-global-tcp-max: one map holds both).
    #[arg(long, default_value_t = DEFAULT_CT_HALF)]
    pub bpf_ct_global_any_max: u32,

    /// Entries of each endpoint's policy map (cilium_policy_NNNNN).
    #[arg(long, default_value_t = sizes::DEFAULT_POLICY_MAX)]
    pub bpf_policy_map_max: u32,

    /// Entries of the service and backend maps (the reverse-NAT map gets
    /// the same, at most 65536).
    #[arg(long, default_value_t = sizes::DEFAULT_LB_MAX)]
    pub bpf_lb_map_max: u32,

    /// Entries of the socket load balancer's reverse translation map
    /// (cilium_lb4_reverse_sk).
    #[arg(long, default_value_t = sizes::DEFAULT_SOCK_REV_MAX)]
    pub bpf_sock_rev_map_max: u32,

    /// Seconds between connection-tracking garbage collections.
    #[arg(long, default_value_t = 30)]
    pub ct_gc_interval: u64,

    /// Probe every node (ICMP and HTTP) and serve the results on
    /// health.sock next to --socket (`cilium-health status`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_health_checking: bool,

    /// Run a health endpoint on this node (an endpoint with identity
    /// reserved:health, answering probes in a namespace of its own) and probe
    /// the other nodes' health endpoints from it. Off by default here (on in
    /// Cilium): it takes an address and an endpoint on every node.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub enable_endpoint_health_checking: bool,

    /// TCP port the health responders (agent and health endpoint) answer on.
    #[arg(long, default_value_t = ::health::DEFAULT_PORT)]
    pub cluster_health_port: u16,

    /// Time between two rounds of health probes (e.g. 5s, 1m).
    #[arg(long, default_value = "5s", value_parser = ::health::time::parse_duration)]
    pub health_check_interval: std::time::Duration,

    /// Kubernetes mode: the kubeconfig to reach the API server with.
    #[arg(long)]
    pub k8s_kubeconfig_path: Option<PathBuf>,

    /// Kubernetes mode: the API server's address (overrides the
    /// kubeconfig's; alone, with the pod's in-cluster credentials).
    #[arg(long)]
    pub k8s_api_server: Option<String>,

    /// Where identities live: `crd` (CiliumIdentity objects; Cilium's
    /// default, and ours in Kubernetes mode) or `kvstore`. Without
    /// Kubernetes it is always `kvstore`.
    #[arg(long, value_parser = ["crd", "kvstore"])]
    pub identity_allocation_mode: Option<String>,

    /// The shortest time, in seconds, an IP learned from DNS stays allowed
    /// by toFQDNs rules, whatever the answer's TTL (0: the TTL as given).
    #[arg(long, default_value_t = 0)]
    pub tofqdns_min_ttl: u32,

    /// IPs kept per DNS name per endpoint; the ones expiring first make
    /// room.
    #[arg(long, default_value_t = 1000)]
    pub tofqdns_endpoint_max_ip_per_hostname: usize,

    /// How the DNS proxy answers a query the rules deny: `refused` or
    /// `nameError` (NXDOMAIN).
    #[arg(long, default_value = "refused", value_parser = ["refused", "nameError"])]
    pub tofqdns_dns_reject_response_code: String,

    /// Longest time the DNS proxy holds an allowed answer while the
    /// datapath learns its IPs (e.g. "1s", "100ms").
    #[arg(long, default_value = "1s")]
    pub tofqdns_proxy_response_max_delay: String,

    /// CRD mode: how often unused CiliumIdentities are deleted, and how old
    /// one must be to go (Cilium's operator flag; here every agent runs the
    /// collection).
    #[arg(long, default_value = "15m", value_parser = ::health::time::parse_duration)]
    pub identity_gc_interval: std::time::Duration,

    /// `cluster-pool` (this node's range from `--ipv4-range` or
    /// `--cluster-pool-ipv4-cidr`) or `kubernetes` (the Node's
    /// `spec.podCIDR`).
    #[arg(long, default_value = "cluster-pool", value_parser = ["cluster-pool", "kubernetes"])]
    pub ipam: String,

    /// The cluster's name, in every pod identity
    /// (`io.cilium.k8s.policy.cluster`).
    #[arg(long, default_value = "default")]
    pub cluster_name: String,

    /// Keep a ring of flows built from the monitor's events and serve
    /// Hubble's Observer API (`hubble observe`). While on, the datapath
    /// builds events all the time, as with a `cilium monitor` client open.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub enable_hubble: bool,

    /// Flows the ring keeps (Cilium's default; Cilium wants 2^n-1).
    #[arg(long, default_value_t = hubble::DEFAULT_CAPACITY)]
    pub hubble_event_buffer_capacity: usize,

    /// Unix socket of Hubble's Observer API.
    #[arg(long, default_value = "/var/run/cilium/hubble.sock")]
    pub hubble_socket_path: PathBuf,

    /// Also serve Hubble's Observer API on [HOST]:PORT (e.g. ":4244").
    #[arg(long)]
    pub hubble_listen_address: Option<String>,

    /// Serve Hubble's web UI (service map and flow table) on [HOST]:PORT
    /// (e.g. "127.0.0.1:12000"); needs --enable-hubble. Off by default.
    #[arg(long)]
    pub hubble_ui_address: Option<String>,
}

/// Half of bpf/lib/maps.h's CT size each, so the defaults keep its total.
const DEFAULT_CT_HALF: u32 = sizes::DEFAULT_CT_MAX / 2;

impl Config {
    /// Settings no single flag's parser can judge.
    pub fn check(&self) -> anyhow::Result<()> {
        if !self.enable_ipv4 && !self.enable_ipv6 {
            anyhow::bail!(
                "--enable-ipv4=false and --enable-ipv6=false: endpoints need an address family; enable at least one"
            );
        }
        if self.ipv6_node != "auto" && self.ipv6_node.parse::<std::net::Ipv6Addr>().is_err() {
            anyhow::bail!(
                "--ipv6-node {:?}: expected an IPv6 address or auto",
                self.ipv6_node
            );
        }
        Ok(())
    }

    /// Whether identities, endpoints and nodes go through Cilium's CRDs
    /// instead of the kvstore.
    pub fn crd_mode(&self) -> bool {
        self.k8s().enabled() && self.identity_allocation_mode.as_deref() != Some("kvstore")
    }

    /// How to reach Kubernetes; `enabled()` is false without a flag.
    pub fn k8s(&self) -> k8s::ConnectOptions {
        k8s::ConnectOptions {
            kubeconfig: self.k8s_kubeconfig_path.clone(),
            api_server: self.k8s_api_server.clone(),
        }
    }

    /// The BPF map sizes the flags ask for.
    pub fn map_sizes(&self) -> sizes::MapSizes {
        sizes::MapSizes {
            ct: self
                .bpf_ct_global_tcp_max
                .saturating_add(self.bpf_ct_global_any_max),
            policy: self.bpf_policy_map_max,
            lb: self.bpf_lb_map_max,
            sock_rev: self.bpf_sock_rev_map_max,
        }
    }

    pub fn node_name(&self) -> String {
        self.node_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into())
        })
    }
}
