//! Monitor events (already named by the agent: identities' labels, local
//! endpoints) as Hubble flows, with Cilium's numbers for event types,
//! observation points, drop reasons and policy match types.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use api::models::{monitor_kind, L7Record, MonitorEvent};

use crate::proto::flow::{
    self, layer4, layer7, CiliumEventType, DropReason, Endpoint, FlowType, IpVersion, L7FlowType,
    Layer4, Layer7, TcpFlags, TraceObservationPoint, TraceReason, TrafficDirection, Verdict,
};
use crate::timestamp::Timestamp;

mod sock;

/// Cilium's monitor message types (`pkg/monitor/api`), Hubble's `event_type.type`.
pub mod event_type {
    pub const DROP: i32 = 1;
    pub const TRACE: i32 = 4;
    pub const POLICY_VERDICT: i32 = 5;
    pub const TRACE_SOCK: i32 = 7;
    pub const ACCESS_LOG: i32 = 129;
}

/// The label that carries a pod's namespace.
const NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace=";

/// A local endpoint's pod: Kubernetes' namespace/name when the plugin gave
/// them, else the container's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

/// Local endpoints' pods by endpoint ID.
pub type Pods = HashMap<u16, PodRef>;

/// What naming an event adds to it: each side's identity labels and local
/// endpoint (0: none). Borrowed, so a caller that keeps the labels per
/// identity hands them over without copying the event.
#[derive(Debug, Clone, Copy)]
pub struct Sides<'a> {
    pub src_labels: &'a [String],
    pub dst_labels: &'a [String],
    pub src_endpoint: u16,
    pub dst_endpoint: u16,
}

impl<'a> Sides<'a> {
    /// The sides an already named event carries.
    pub fn of(ev: &'a MonitorEvent) -> Self {
        Sides {
            src_labels: &ev.src_labels,
            dst_labels: &ev.dst_labels,
            src_endpoint: ev.src_endpoint,
            dst_endpoint: ev.dst_endpoint,
        }
    }
}

/// The flow an event stands for; `None` for events that are no flow (lost
/// counts, debug messages). `received` dates datapath events, whose own
/// timestamp counts from boot.
pub fn to_flow(
    ev: &MonitorEvent,
    pods: &Pods,
    node_name: &str,
    received: SystemTime,
) -> Option<flow::Flow> {
    to_flow_with(ev, Sides::of(ev), pods, node_name, received)
}

/// [`to_flow`] for an event whose sides are named apart from it.
pub fn to_flow_with(
    ev: &MonitorEvent,
    sides: Sides<'_>,
    pods: &Pods,
    node_name: &str,
    received: SystemTime,
) -> Option<flow::Flow> {
    let kind = ev.kind.as_str();
    let (event_type, sub_type) = match kind {
        monitor_kind::DROP => (event_type::DROP, drop_reason(ev.reason) as i32),
        monitor_kind::TRACE => (event_type::TRACE, trace_sub_type(&ev.observation_point)),
        monitor_kind::POLICY_VERDICT => (event_type::POLICY_VERDICT, 0),
        monitor_kind::L7 => (event_type::ACCESS_LOG, 0),
        monitor_kind::TRACE_SOCK => (event_type::TRACE_SOCK, sock::point(ev) as i32),
        _ => return None,
    };
    let time = match (kind, ev.timestamp_ns) {
        (monitor_kind::L7, ns) if ns != 0 => UNIX_EPOCH + std::time::Duration::from_nanos(ns),
        _ => received,
    };
    let denied = ev.verdict == "deny";
    let verdict = match kind {
        monitor_kind::DROP => Verdict::Dropped,
        monitor_kind::L7 => match ev.l7.as_ref().map(|r| r.verdict.as_str()) {
            Some("Denied") => Verdict::Dropped,
            Some("Error") => Verdict::Error,
            _ => Verdict::Forwarded,
        },
        _ if denied => Verdict::Dropped,
        _ => Verdict::Forwarded,
    };
    let drop_code = match kind {
        monitor_kind::DROP => drop_reason(ev.reason),
        monitor_kind::POLICY_VERDICT if denied => DropReason::PolicyDenied as u32,
        _ => 0,
    };
    let is_reply = match kind {
        monitor_kind::TRACE | monitor_kind::POLICY_VERDICT => Some(ev.ct_state == "reply"),
        _ => None,
    };
    let mut out = flow::Flow {
        time: Some(timestamp(time)),
        verdict: verdict as i32,
        drop_reason: drop_code,
        // A code the enum lacks would make the flow unprintable as JSON.
        drop_reason_desc: DropReason::try_from(drop_code as i32).map_or(0, |r| r as i32),
        ip: Some(flow::Ip {
            source: ev.src_ip.clone(),
            destination: ev.dst_ip.clone(),
            ip_version: ip_version(&ev.src_ip) as i32,
            encrypted: false,
        }),
        l4: layer4(ev),
        source: Some(endpoint(
            sides.src_endpoint,
            ev.src_identity,
            sides.src_labels,
            pods,
        )),
        destination: Some(endpoint(
            sides.dst_endpoint,
            ev.dst_identity,
            sides.dst_labels,
            pods,
        )),
        r#type: if kind == monitor_kind::L7 {
            FlowType::L7
        } else {
            FlowType::L3L4
        } as i32,
        node_name: node_name.to_string(),
        event_type: Some(CiliumEventType {
            r#type: event_type,
            sub_type,
        }),
        traffic_direction: match ev.direction.as_str() {
            "ingress" => TrafficDirection::Ingress,
            "egress" => TrafficDirection::Egress,
            _ => TrafficDirection::Unknown,
        } as i32,
        is_reply,
        ..Default::default()
    };
    match kind {
        monitor_kind::TRACE => {
            out.trace_observation_point = observation_point(&ev.observation_point) as i32;
            out.trace_reason = match ev.ct_state.as_str() {
                "new" => TraceReason::New,
                "established" => TraceReason::Established,
                "reply" => TraceReason::Reply,
                _ => TraceReason::Unknown,
            } as i32;
        }
        monitor_kind::POLICY_VERDICT => out.policy_match_type = match_type(&ev.match_type),
        monitor_kind::L7 => {
            out.l7 = ev.l7.as_ref().map(layer7);
            out.proxy_port = ev.l7.as_ref().map_or(0, |r| u32::from(r.proxy_port));
        }
        _ => {}
    }
    out.summary = summary(&out);
    if kind == monitor_kind::TRACE_SOCK {
        sock::finish(ev, &mut out);
    }
    Some(out)
}

/// The one-line summary Cilium fills in and `hubble observe -o compact`
/// prints at the end of a line: the L7 record, else the L4 protocol.
fn summary(f: &flow::Flow) -> String {
    if let Some(record) = f.l7.as_ref().and_then(|l| l.record.as_ref()) {
        return match record {
            layer7::Record::Http(h) if h.code != 0 => {
                format!("{} {} ({} {})", h.protocol, h.code, h.method, h.url)
            }
            layer7::Record::Http(h) => format!("{} {} {}", h.protocol, h.method, h.url),
            layer7::Record::Kafka(k) => {
                format!(
                    "Kafka {} topic '{}' error {}",
                    k.api_key, k.topic, k.error_code
                )
            }
            layer7::Record::Dns(d) if d.ips.is_empty() && d.cnames.is_empty() => {
                format!("DNS Query {}. {}", d.query, d.qtypes.join(","))
            }
            layer7::Record::Dns(d) => format!(
                "DNS Answer \"{}\" TTL: {} (Proxy {}. {})",
                d.ips
                    .iter()
                    .chain(&d.cnames)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(","),
                d.ttl,
                d.query,
                d.qtypes.join(",")
            ),
        };
    }
    match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(t)) => {
            let flags = t.flags.unwrap_or_default();
            let names: Vec<&str> = [
                (flags.syn, "SYN"),
                (flags.fin, "FIN"),
                (flags.rst, "RST"),
                (flags.psh, "PSH"),
                (flags.ack, "ACK"),
            ]
            .into_iter()
            .filter_map(|(set, name)| set.then_some(name))
            .collect();
            format!("TCP Flags: {}", names.join(", "))
        }
        Some(layer4::Protocol::Udp(_)) => "UDP".into(),
        Some(layer4::Protocol::IcmPv4(_)) => "ICMPv4".into(),
        Some(layer4::Protocol::IcmPv6(_)) => "ICMPv6".into(),
        None => String::new(),
    }
}

fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::from_system_time(t)
}

/// Our datapath's drop codes are Cilium's own numbers.
fn drop_reason(code: u8) -> u32 {
    u32::from(code)
}

/// The monitor's observation point as Cilium's trace sub-type
/// (`TraceToLxc` = 0 ... `TraceToNetwork` = 11).
fn trace_sub_type(point: &str) -> i32 {
    match point {
        "to-endpoint" => 0,
        "to-proxy" => 1,
        "to-host" => 2,
        "to-stack" => 3,
        "to-overlay" => 4,
        "from-endpoint" => 5,
        "from-proxy" => 6,
        "from-host" => 7,
        "from-stack" => 8,
        "from-overlay" => 9,
        "from-network" => 10,
        "to-network" => 11,
        _ => 0,
    }
}

fn observation_point(point: &str) -> TraceObservationPoint {
    match point {
        "to-endpoint" => TraceObservationPoint::ToEndpoint,
        "to-proxy" => TraceObservationPoint::ToProxy,
        "to-host" => TraceObservationPoint::ToHost,
        "to-stack" => TraceObservationPoint::ToStack,
        "to-overlay" => TraceObservationPoint::ToOverlay,
        "from-endpoint" => TraceObservationPoint::FromEndpoint,
        "from-proxy" => TraceObservationPoint::FromProxy,
        "from-host" => TraceObservationPoint::FromHost,
        "from-stack" => TraceObservationPoint::FromStack,
        "from-overlay" => TraceObservationPoint::FromOverlay,
        "from-network" => TraceObservationPoint::FromNetwork,
        "to-network" => TraceObservationPoint::ToNetwork,
        _ => TraceObservationPoint::UnknownPoint,
    }
}

/// Cilium's numbers for policy match types (`pkg/monitor/api`), from the
/// monitor's names (our datapath numbers them differently).
fn match_type(text: &str) -> u32 {
    match text {
        "L3-Only" => 1,
        "L3-L4" => 2,
        "L4-Only" => 3,
        "all" => 4,
        "L3-Proto" => 5,
        "Proto-Only" => 6,
        _ => 0,
    }
}

/// The monitor event's addresses are text: an IPv6 one has colons.
fn ip_version(addr: &str) -> IpVersion {
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(_)) => IpVersion::IPv6,
        _ => IpVersion::IPv4,
    }
}

fn layer4(ev: &MonitorEvent) -> Option<Layer4> {
    let (sport, dport) = (u32::from(ev.src_port), u32::from(ev.dst_port));
    let protocol = match ev.protocol {
        6 => {
            let has = |f: &str| ev.tcp_flags.iter().any(|t| t == f);
            layer4::Protocol::Tcp(flow::Tcp {
                source_port: sport,
                destination_port: dport,
                flags: Some(TcpFlags {
                    fin: has("FIN"),
                    syn: has("SYN"),
                    rst: has("RST"),
                    psh: has("PSH"),
                    ack: has("ACK"),
                    ..Default::default()
                }),
            })
        }
        17 => layer4::Protocol::Udp(flow::Udp {
            source_port: sport,
            destination_port: dport,
        }),
        1 => layer4::Protocol::IcmPv4(flow::IcmPv4::default()),
        58 => layer4::Protocol::IcmPv6(flow::IcmPv6::default()),
        _ => return None,
    };
    Some(Layer4 {
        protocol: Some(protocol),
    })
}

fn endpoint(id: u16, identity: u32, labels: &[String], pods: &Pods) -> Endpoint {
    let pod = pods.get(&id).filter(|_| id != 0);
    let label_namespace = labels
        .iter()
        .find_map(|l| l.strip_prefix(NAMESPACE_LABEL))
        .unwrap_or_default();
    Endpoint {
        id: u32::from(id),
        identity,
        namespace: pod
            .map(|p| p.namespace.as_str())
            .filter(|ns| !ns.is_empty())
            .unwrap_or(label_namespace)
            .to_string(),
        labels: labels.to_vec(),
        pod_name: pod.map(|p| p.name.clone()).unwrap_or_default(),
        ..Default::default()
    }
}

fn layer7(r: &L7Record) -> Layer7 {
    let response = |yes: bool| {
        if yes {
            L7FlowType::Response
        } else {
            L7FlowType::Request
        }
    };
    // The proxy logs one record per request, its outcome included: a
    // request-typed flow that carries the status.
    let (kind, record) = match r.protocol.as_str() {
        "http" | "http2" => (
            L7FlowType::Request,
            layer7::Record::Http(flow::Http {
                code: u32::from(r.status),
                method: r.method.clone(),
                url: format!("http://{}{}", r.host, r.path),
                protocol: if r.protocol == "http2" {
                    "HTTP/2"
                } else {
                    "HTTP/1.1"
                }
                .into(),
                headers: Vec::new(),
            }),
        ),
        "kafka" => (
            L7FlowType::Request,
            layer7::Record::Kafka(flow::Kafka {
                error_code: i32::from(r.status),
                api_key: r.method.clone(),
                topic: r.topics.first().cloned().unwrap_or_default(),
                ..Default::default()
            }),
        ),
        _ => {
            let dns = r.dns.clone().unwrap_or_default();
            (
                response(dns.kind == "response"),
                layer7::Record::Dns(flow::Dns {
                    query: dns.query,
                    ips: dns.ips,
                    ttl: dns.ttl,
                    cnames: dns.cnames,
                    observation_source: "proxy".into(),
                    rcode: u32::from(dns.rcode),
                    qtypes: dns.qtypes,
                    rrtypes: Vec::new(),
                }),
            )
        }
    };
    Layer7 {
        r#type: kind as i32,
        latency_ns: 0,
        record: Some(record),
    }
}

#[cfg(test)]
mod tests;
