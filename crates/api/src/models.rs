//! The REST contract's bodies, shaped like Cilium's v1 models (JSON names
//! included) so that tooling written for Cilium reads them unchanged.
//!
//! Every struct carries `#[serde(default)]`: a client built against an older
//! or newer agent must still decode what it understands instead of failing on
//! a missing field.

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- status

/// `GET /v1/healthz`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct StatusResponse {
    pub cilium: Status,
    pub kvstore: Status,
    pub ipam: IpamStatus,
    pub policy: PolicyStatus,
    /// Number of endpoints the agent manages.
    pub endpoints: u32,
    /// Endpoints by state (`ready`, `regenerating`, ...).
    #[serde(rename = "endpoint-states")]
    pub endpoint_states: std::collections::BTreeMap<String, u32>,
    /// The eBPF datapath: programs attached, maps reachable.
    pub datapath: Status,
    /// Fill level of every BPF map.
    #[serde(rename = "bpf-maps")]
    pub bpf_maps: BpfMapStatus,
    pub proxy: ProxyStatus,
    /// The API server connection in Kubernetes mode; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<K8sStatus>,
    /// Background tasks and their failures (events reader, CT GC, ...).
    pub controllers: Vec<ControllerStatus>,
    /// What the health checker last measured (`Cluster health:`).
    #[serde(default, rename = "cluster-health")]
    pub cluster_health: ClusterHealthStatus,
}

/// Kubernetes as the agent sees it (Cilium's `K8sStatus`, plus what is
/// watched and the policy objects this node cannot enforce).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct K8sStatus {
    /// `Ok`, or `Warning` while a watch cannot reach the API server.
    pub state: String,
    pub msg: String,
    /// Watched resources with their state, like `pods (synced)`.
    pub k8s_api_versions: Vec<String>,
    /// `Kind namespace/name: reason` of every object not enforced.
    pub policy_errors: Vec<String>,
}

/// The nodes the agent's health checker reaches (ICMP and HTTP to each
/// node and its health endpoint), as of its last probe round.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct ClusterHealthStatus {
    /// `Ok` (probing), `Disabled`, or `Warning` (e.g. the responder could
    /// not listen); empty from an agent without a health checker.
    pub state: String,
    pub msg: String,
    /// Nodes that answered every probe.
    pub reachable: u32,
    /// Nodes probed.
    pub total: u32,
    /// When the last round finished (RFC 3339); empty before the first.
    pub timestamp: String,
    /// Names of the nodes that missed a probe.
    pub unreachable: Vec<String>,
}

/// Health of one subsystem.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Status {
    /// One of [`Status::OK`], [`Status::WARNING`], [`Status::FAILURE`], [`Status::DISABLED`].
    pub state: String,
    pub msg: String,
}

impl Status {
    pub const OK: &'static str = "Ok";
    pub const WARNING: &'static str = "Warning";
    pub const FAILURE: &'static str = "Failure";
    pub const DISABLED: &'static str = "Disabled";
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct IpamStatus {
    /// Allocated IPv4 addresses.
    pub ipv4: Vec<String>,
    /// Allocated IPv6 addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<String>,
    #[serde(rename = "alloc-range")]
    pub alloc_range: String,
    #[serde(rename = "ipv6-alloc-range", skip_serializing_if = "String::is_empty")]
    pub ipv6_alloc_range: String,
    /// How many addresses the range can hand out in total.
    pub capacity: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct PolicyStatus {
    pub revision: u64,
    pub rules: u32,
}

// ---------------------------------------------------------------- config

/// `GET /v1/config`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct DaemonConfiguration {
    pub status: DaemonConfigurationStatus,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct DaemonConfigurationStatus {
    pub addressing: NodeAddressing,
    pub kvstore: String,
    pub bpf_root: String,
    pub state_dir: String,
    pub node_name: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct NodeAddressing {
    pub ipv4: NodeAddressingElement,
    /// Absent when the node has no IPv6 (`--enable-ipv6=false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<NodeAddressingElement>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct NodeAddressingElement {
    pub enabled: bool,
    /// The node's router/gateway IP for endpoints.
    pub ip: String,
    pub alloc_range: String,
}

// ---------------------------------------------------------------- ipam

/// `POST /v1/ipam` (201).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct IpamResponse {
    pub address: AddressPair,
    pub host_addressing: NodeAddressing,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<IpamAddressResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<IpamAddressResponse>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct IpamAddressResponse {
    pub ip: String,
    pub gateway: String,
    pub cidrs: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct AddressPair {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
}

// ---------------------------------------------------------------- endpoint

/// Body of `PUT /v1/endpoint/{id}`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct EndpointChangeRequest {
    /// `None` or `Some(0)`: the agent picks the id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    pub interface_index: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_mac: Option<String>,
    pub addressing: AddressPair,
    /// Labels as `source:key[=value]`.
    pub labels: Vec<String>,
    /// Path of the container's network namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s_pod_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s_namespace: Option<String>,
    /// Requested initial state; the agent decides when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The container's named ports (Cilium's `named-ports`): ingress rules
    /// may name them instead of numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub named_ports: Vec<Port>,
}

/// A named container port (Cilium's `Port` model).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Port {
    pub name: String,
    pub port: u16,
    /// `TCP` (also when empty), `UDP` or `SCTP`.
    pub protocol: String,
}

/// One endpoint as the agent reports it.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Endpoint {
    pub id: u16,
    pub spec: EndpointConfigurationSpec,
    pub status: EndpointStatus,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct EndpointConfigurationSpec {
    pub label_configuration: LabelConfigurationSpec,
}

/// Body of `PATCH /v1/endpoint/{id}/labels`: the complete new user label list.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct LabelConfigurationSpec {
    pub user: Vec<String>,
}

/// Endpoint states, Cilium's spelling.
pub mod endpoint_state {
    pub const READY: &str = "ready";
    pub const REGENERATING: &str = "regenerating";
    pub const WAITING_FOR_IDENTITY: &str = "waiting-for-identity";
    pub const DISCONNECTED: &str = "disconnected";
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct EndpointStatus {
    /// One of the [`endpoint_state`] constants.
    pub state: String,
    pub identity: Identity,
    pub networking: EndpointNetworking,
    pub external_identifiers: EndpointIdentifiers,
    pub labels: LabelConfigurationStatus,
    pub policy: EndpointPolicyStatus,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub named_ports: Vec<Port>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct EndpointNetworking {
    pub addressing: Vec<AddressPair>,
    pub interface_name: String,
    pub interface_index: i64,
    pub mac: String,
    pub host_mac: String,
    pub netns: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct EndpointIdentifiers {
    pub container_id: String,
    pub container_name: String,
    pub pod_name: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct LabelConfigurationStatus {
    pub realized: LabelConfigurationSpec,
    /// The labels the identity is derived from.
    pub security_relevant: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct EndpointPolicyStatus {
    pub realized: EndpointPolicy,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct EndpointPolicy {
    /// One of the [`policy_enabled`] constants.
    pub policy_enabled: String,
    pub policy_revision: u64,
}

/// Values of [`EndpointPolicy::policy_enabled`], Cilium's spelling.
pub mod policy_enabled {
    pub const NONE: &str = "none";
    pub const INGRESS: &str = "ingress";
    pub const EGRESS: &str = "egress";
    pub const BOTH: &str = "both";
}

// ---------------------------------------------------------------- identity

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Identity {
    pub id: u32,
    pub labels: Vec<String>,
    #[serde(rename = "labelsSHA256")]
    pub labels_sha256: String,
}

// ---------------------------------------------------------------- policy

/// `GET|PUT|DELETE /v1/policy`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Policy {
    pub revision: u64,
    /// The rules as JSON text.
    pub policy: String,
}

// ---------------------------------------------------------------- bpf maps

/// `GET /v1/map/{name}`: a kernel map's decoded contents.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct BpfMap {
    pub path: String,
    pub name: String,
    pub entries: Vec<BpfMapEntry>,
}

/// One decoded entry; the `kind` tag names the map it came from.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BpfMapEntry {
    /// `cilium_policy_<epid>`. Identity 0 is the wildcard (any peer).
    Policy {
        identity: u32,
        labels: Vec<String>,
        /// "ingress" | "egress"
        direction: String,
        /// 0 = any protocol.
        protocol: u8,
        /// 0 = any port.
        port: u16,
        deny: bool,
        proxy_port: u16,
        packets: u64,
        bytes: u64,
    },
    /// `cilium_ipcache`.
    Ipcache {
        /// e.g. "10.200.0.5/32"
        prefix: String,
        identity: u32,
        tunnel_endpoint: String,
    },
    /// `cilium_ct4_global`.
    Ct {
        protocol: u8,
        /// "IN" | "OUT"
        direction: String,
        /// ip:port
        src: String,
        /// ip:port
        dst: String,
        expires_in_secs: i64,
        rx_packets: u64,
        rx_bytes: u64,
        tx_packets: u64,
        tx_bytes: u64,
        flags: Vec<String>,
        src_identity: u32,
    },
    /// `cilium_snat_v4_external` / `cilium_snat_v6_external`: one direction
    /// of a NodePort translation.
    Nat {
        protocol: u8,
        /// "OUT" (client's flow, by its tuple after DNAT) | "IN" (backend's
        /// answer to the node)
        direction: String,
        /// ip:port
        src: String,
        /// ip:port
        dst: String,
        /// ip:port the address is translated to
        translated: String,
        rev_nat_index: u16,
    },
    /// `cilium_lxc`.
    Lxc {
        ip: String,
        id: u16,
        identity: u32,
        ifindex: u32,
        mac: String,
        node_mac: String,
    },
}

// ---------------------------------------------------------------- fqdn

/// `GET /v1/fqdn/cache`: what one endpoint learned for one name through
/// the DNS proxy, as Cilium's `DNSLookup`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct DnsLookup {
    pub fqdn: String,
    pub ips: Vec<String>,
    pub ttl: u32,
    /// RFC 3339.
    pub lookup_time: String,
    /// RFC 3339.
    pub expiration_time: String,
    pub endpoint_id: u64,
    /// "lookup": from a DNS answer.
    pub source: String,
}

// ---------------------------------------------------------------- monitor

/// One datapath event as streamed by `GET /v1/monitor` (one JSON object per
/// line). Fields that do not apply to an event's kind stay at their default.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct MonitorEvent {
    /// One of the [`monitor_kind`] constants.
    pub kind: String,
    pub timestamp_ns: u64,
    pub cpu: u32,
    pub endpoint: u16,
    pub ifindex: u32,
    pub src_identity: u32,
    pub dst_identity: u32,
    pub reason: u8,
    /// drop: e.g. "Policy denied".
    pub reason_text: String,
    /// trace: "to-endpoint", "from-endpoint", "to-stack", ...
    pub observation_point: String,
    /// policy-verdict: "allow" | "deny".
    pub verdict: String,
    /// "ingress" | "egress".
    pub direction: String,
    /// policy-verdict: "L3-L4", "L3-Only", "L4-Only", "all", "none".
    pub match_type: String,
    /// "new", "established", "reply".
    pub ct_state: String,
    pub protocol: u8,
    pub src_ip: String,
    pub dst_ip: String,
    pub src_port: u16,
    pub dst_port: u16,
    /// "SYN", "ACK", "FIN", "RST", "PSH".
    pub tcp_flags: Vec<String>,
    pub length: u32,
    /// Labels of the source / destination identity, resolved by the agent.
    pub src_labels: Vec<String>,
    pub dst_labels: Vec<String>,
    /// The local endpoint sending / receiving the packet; 0 = not local.
    pub src_endpoint: u16,
    pub dst_endpoint: u16,
    /// kind "lost": how many events this client missed (it fell behind).
    pub lost: u64,
    /// kind "l7": the proxy's access-log record of one request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l7: Option<L7Record>,
    /// kind "trace-sock": the socket whose destination the socket load
    /// balancer translated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sock: Option<SockTrace>,
}

/// A socket LB translation (Cilium's trace-sock notification).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct SockTrace {
    /// "pre-xlate-fwd", "post-xlate-fwd", "pre-xlate-rev" or "post-xlate-rev".
    pub xlate_point: String,
    pub cookie: u64,
    /// The socket's network namespace, which names its endpoint.
    pub netns_cookie: u64,
    pub cgroup_id: u64,
}

/// One L7 request as the proxy saw and judged it.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct L7Record {
    /// "http", "http2", "kafka" or "dns".
    pub protocol: String,
    /// "Forwarded", "Denied" or "Error".
    pub verdict: String,
    /// HTTP method or Kafka API key name ("produce").
    pub method: String,
    pub path: String,
    pub host: String,
    pub topics: Vec<String>,
    /// HTTP status, Kafka error code (29 = topic authorization failed), or
    /// DNS rcode.
    pub status: u16,
    pub proxy_port: u16,
    /// protocol "dns": the query, or the answer the pod got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<L7Dns>,
}

/// A DNS message the DNS proxy passed or refused.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct L7Dns {
    /// "request" or "response".
    pub kind: String,
    /// The query name, lowercase, without the trailing dot.
    pub query: String,
    /// "A", "AAAA", ...
    pub qtypes: Vec<String>,
    pub rcode: u8,
    pub ips: Vec<String>,
    pub ttl: u32,
    pub cnames: Vec<String>,
}

/// Values of [`MonitorEvent::kind`] (also the `type` query values).
pub mod monitor_kind {
    pub const DROP: &str = "drop";
    pub const TRACE: &str = "trace";
    pub const POLICY_VERDICT: &str = "policy-verdict";
    /// The socket load balancer translated a destination.
    pub const TRACE_SOCK: &str = "trace-sock";
    pub const DEBUG: &str = "debug";
    /// An L7 request seen by the proxy (its access log).
    pub const L7: &str = "l7";
    /// Not a datapath event: the stream tells its client it lost events.
    pub const LOST: &str = "lost";
}

// ---------------------------------------------------------------- errors

/// Largest request body the agent accepts (413 above it): 128 MiB. Sized for
/// policy imports: 100,000 CIDR rules (one `toCIDR` each, with a selector
/// and a label) take 12.9 MB of YAML, 13.3 MB of JSON, so this leaves room
/// for rules ten times as long, while no request makes the agent buffer
/// without bound.
pub const MAX_REQUEST_BODY_BYTES: usize = 128 * 1024 * 1024;

/// Body of every 4xx/5xx answer.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct ApiError {
    pub message: String,
}

// ---------------------------------------------------------------- status details

/// `bpf-maps` of [`StatusResponse`]: how full each map is.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct BpfMapStatus {
    pub maps: Vec<BpfMapProperties>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default, rename_all = "kebab-case")]
pub struct BpfMapProperties {
    pub name: String,
    /// max_entries.
    pub size: u64,
    pub entries: u64,
    /// entries / size, 0.0 to 1.0.
    pub pressure: f64,
    /// Set when the map is (nearly) full: what happens and which flag resizes it.
    pub warning: String,
}

/// The L7 proxy; "Disabled" until it exists.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct ProxyStatus {
    pub state: String,
    pub msg: String,
    pub total_redirects: u64,
}

/// One background task of the agent, Cilium's controller status shape.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct ControllerStatus {
    pub name: String,
    pub status: ControllerRunStatus,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct ControllerRunStatus {
    pub success_count: u64,
    pub failure_count: u64,
    pub consecutive_failure_count: u64,
    /// RFC 3339, empty if never.
    pub last_success_timestamp: String,
    pub last_failure_timestamp: String,
    pub last_failure_msg: String,
}

// ---------------------------------------------------------------- monitor filter

/// Query of `GET /v1/monitor`: every field narrows the stream.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct MonitorQuery {
    /// Event kinds ([`monitor_kind`]); empty = all.
    pub types: Vec<String>,
    /// Only events whose source is this local endpoint.
    pub from: Option<u16>,
    /// Only events whose destination is this local endpoint.
    pub to: Option<u16>,
    /// Only events whose source or destination is this local endpoint.
    pub related_to: Option<u16>,
}

// ---------------------------------------------------------------- policy trace

/// Body of `GET|POST /v1/policy/resolve` (Cilium's TraceSelector, plus
/// identity and endpoint as alternatives to labels).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct TraceSelector {
    pub from: TraceFrom,
    pub to: TraceTo,
    pub verbose: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct TraceFrom {
    pub labels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<u16>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct TraceTo {
    pub labels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<u16>,
    /// Empty: L3 only (any protocol, any port).
    pub dports: Vec<TracePort>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct TracePort {
    /// For ICMP: the message type.
    pub port: u16,
    /// "TCP", "UDP", "SCTP", "ICMP" or "ANY".
    pub protocol: String,
}

/// Answer of `/v1/policy/resolve`: Cilium's `log` and `verdict`, plus the
/// same facts structured.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct PolicyTraceResult {
    /// The human-readable trace `cilium policy trace` prints.
    pub log: String,
    /// "allowed" | "denied".
    pub verdict: String,
    pub source: TracePeer,
    pub destination: TracePeer,
    /// The source's egress policy, one entry per port traced.
    pub egress: Vec<DirectionTrace>,
    /// The destination's ingress policy, one entry per port traced.
    pub ingress: Vec<DirectionTrace>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct TracePeer {
    /// 0 when the labels have no identity yet.
    pub identity: u32,
    pub labels: Vec<String>,
    /// The local endpoint, if the peer is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<u16>,
}

/// One direction's decision for one port.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct DirectionTrace {
    /// e.g. "80/TCP", "ANY".
    pub port: String,
    /// Some selecting rule enforces this direction (default deny).
    pub enforced: bool,
    /// Rules that select the endpoint and speak about this direction.
    pub rules: Vec<RuleTrace>,
    /// "allowed" | "denied".
    pub verdict: String,
    /// Cilium's match kinds: "L3-L4", "L3-Only", "L4-Only", "all", "none".
    pub match_type: String,
    /// Why, in words.
    pub reason: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct RuleTrace {
    pub labels: Vec<String>,
    /// The rule's endpointSelector as JSON.
    pub selector: String,
    /// "allows" | "denies" | "no match".
    pub outcome: String,
}

// ---------------------------------------------------------------- metrics

/// One sample of `GET /v1/metrics` (Cilium's Metric model).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct MetricSample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kebab_case_names_match_cilium() {
        let req = EndpointChangeRequest {
            container_id: Some("abc".into()),
            interface_index: 7,
            k8s_pod_name: Some("web".into()),
            ..Default::default()
        };
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["container-id"], "abc");
        assert_eq!(v["interface-index"], 7);
        assert_eq!(v["k8s-pod-name"], "web");
        assert!(v.get("id").is_none(), "None fields are skipped");

        let id = Identity {
            labels_sha256: "x".into(),
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&id).unwrap()["labelsSHA256"], "x");
    }

    #[test]
    fn map_entries_are_tagged_by_kind() {
        let e = BpfMapEntry::Ipcache {
            prefix: "10.200.0.5/32".into(),
            identity: 256,
            tunnel_endpoint: "0.0.0.0".into(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "ipcache");
        let back: BpfMapEntry = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn missing_fields_default() {
        let ep: Endpoint = serde_json::from_value(json!({"id": 12})).unwrap();
        assert_eq!(ep.id, 12);
        assert!(ep.status.labels.security_relevant.is_empty());
        let ev: MonitorEvent = serde_json::from_value(json!({"kind": "drop"})).unwrap();
        assert_eq!(ev.kind, monitor_kind::DROP);
    }
}

// ---------------------------------------------------------------- services

/// `PUT /v1/service/{id}` body and the service's realized state, as Cilium
/// shapes them.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct ServiceSpec {
    pub id: u32,
    pub frontend_address: FrontendAddress,
    pub backend_addresses: Vec<BackendAddress>,
    pub flags: ServiceFlags,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct FrontendAddress {
    pub ip: String,
    pub port: u16,
    /// "TCP" or "UDP".
    pub protocol: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct BackendAddress {
    pub ip: String,
    pub port: u16,
    /// Relative share of new connections; 0 means the default of 1.
    pub weight: u16,
    /// "active" (default) or "maintenance" (no new connections).
    pub state: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct ServiceFlags {
    #[serde(rename = "type")]
    pub kind: String,
    /// The Kubernetes Service's name and namespace (Cilium's flags.name and
    /// flags.namespace): set by the Kubernetes watcher, or any API client.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Service {
    pub spec: ServiceSpec,
    pub status: ServiceStatus,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct ServiceStatus {
    pub realized: ServiceSpec,
}

/// `GET /v1/lb`: what the kernel's service maps hold (for `cilium bpf lb list`).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct LbEntry {
    /// "10.96.0.1:80/TCP"
    pub frontend: String,
    pub rev_nat_index: u16,
    /// Backend per slot, "10.200.0.5:8080 (id 3)".
    pub slots: Vec<String>,
}

// ---------------------------------------------------------------- cluster

/// `GET /v1/cluster/nodes`: the nodes this agent knows, itself included.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct ClusterNodeStatus {
    /// This node's name.
    #[serde(rename = "self")]
    pub self_name: String,
    #[serde(rename = "nodesAdded")]
    pub nodes_added: Vec<NodeElement>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub struct NodeElement {
    pub name: String,
    pub primary_address: NodeAddressing,
    /// The node's pod CIDR.
    pub ipv4_alloc_cidr: String,
    /// "ok" while the node's registration is alive in the kvstore.
    pub health: String,
}

/// One key of the kvstore, as `GET /v1/kvstore/{key}` returns it.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct KvPair {
    pub key: String,
    pub value: String,
}
