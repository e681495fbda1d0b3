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
    #[serde(rename = "alloc-range")]
    pub alloc_range: String,
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
}

/// Values of [`MonitorEvent::kind`] (also the `type` query values).
pub mod monitor_kind {
    pub const DROP: &str = "drop";
    pub const TRACE: &str = "trace";
    pub const POLICY_VERDICT: &str = "policy-verdict";
    pub const DEBUG: &str = "debug";
}

// ---------------------------------------------------------------- errors

/// Body of every 4xx/5xx answer.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct ApiError {
    pub message: String,
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
