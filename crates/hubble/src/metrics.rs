//! Hubble's flow metrics, counted as flows enter the ring: Cilium's `flow`
//! and `drop` handlers, with their label names and values
//! (`hubble_flows_processed_total{protocol,type,subtype,verdict}`,
//! `hubble_drop_total{reason,protocol}`). The agent renders the counts on
//! its Prometheus endpoint; nothing here does IO.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::convert::event_type;
use crate::names::trace_point_name;
use crate::proto::flow::{layer4, layer7, DropReason, Flow, Verdict};

/// Label values of one `hubble_flows_processed_total` series, in Cilium's
/// label order: protocol, type, subtype, verdict.
pub type FlowLabels = [&'static str; 4];
/// Label values of one `hubble_drop_total` series: reason, protocol.
pub type DropLabels = [&'static str; 2];

pub const FLOW_LABEL_NAMES: [&str; 4] = ["protocol", "type", "subtype", "verdict"];
pub const DROP_LABEL_NAMES: [&str; 2] = ["reason", "protocol"];

#[derive(Debug, Default)]
pub struct FlowMetrics {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub flows: BTreeMap<FlowLabels, u64>,
    pub drops: BTreeMap<DropLabels, u64>,
}

impl FlowMetrics {
    /// Counts one flow (call once per flow stored).
    pub fn observe(&self, flow: &Flow) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.flows.entry(flow_labels(flow)).or_default() += 1;
        if let Some(labels) = drop_labels(flow) {
            *c.drops.entry(labels).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> Counts {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The L7 protocol an access-log flow's record is of.
fn l7_name(flow: &Flow) -> Option<&'static str> {
    match flow.l7.as_ref()?.record.as_ref()? {
        layer7::Record::Dns(_) => Some("DNS"),
        layer7::Record::Http(_) => Some("HTTP"),
        layer7::Record::Kafka(_) => Some("Kafka"),
    }
}

/// Cilium's `FlowProtocol`: the L7 protocol of an access-log flow, else
/// the L4 one.
pub fn protocol(flow: &Flow) -> &'static str {
    let ty = flow.event_type.as_ref().map_or(0, |e| e.r#type);
    if ty == event_type::ACCESS_LOG {
        return l7_name(flow).unwrap_or("Unknown L7");
    }
    match ty {
        event_type::DROP | event_type::TRACE | event_type::POLICY_VERDICT => {
            match flow.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
                Some(layer4::Protocol::Tcp(_)) => "TCP",
                Some(layer4::Protocol::Udp(_)) => "UDP",
                Some(layer4::Protocol::IcmPv4(_)) => "ICMPv4",
                Some(layer4::Protocol::IcmPv6(_)) => "ICMPv6",
                None => "Unknown L4",
            }
        }
        _ => "Unknown flow",
    }
}

pub fn flow_labels(flow: &Flow) -> FlowLabels {
    let et = flow.event_type.unwrap_or_default();
    let (ty, subtype) = match et.r#type {
        event_type::ACCESS_LOG => ("L7", l7_name(flow).unwrap_or("")),
        event_type::DROP => ("Drop", ""),
        event_type::TRACE => ("Trace", trace_point_name(et.sub_type).unwrap_or("")),
        event_type::POLICY_VERDICT => ("PolicyVerdict", ""),
        // Cilium's flow handler has no case for socket LB traces: like any
        // other type it names them "Unknown", with the type's number as
        // subtype (and "Unknown flow" as protocol).
        event_type::TRACE_SOCK => ("Unknown", "7"),
        _ => ("Unknown", ""),
    };
    let verdict = Verdict::try_from(flow.verdict).map_or("VERDICT_UNKNOWN", |v| v.as_str_name());
    [protocol(flow), ty, subtype, verdict]
}

/// Dropped flows only.
pub fn drop_labels(flow: &Flow) -> Option<DropLabels> {
    (flow.verdict == Verdict::Dropped as i32).then(|| {
        let reason = DropReason::try_from(flow.drop_reason_desc)
            .map_or("DROP_REASON_UNKNOWN", |r| r.as_str_name());
        [reason, protocol(flow)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::flow::{self, CiliumEventType, Layer4, Layer7};

    fn udp() -> Option<Layer4> {
        Some(Layer4 {
            protocol: Some(layer4::Protocol::Udp(flow::Udp::default())),
        })
    }

    fn event(r#type: i32, sub_type: i32) -> Option<CiliumEventType> {
        Some(CiliumEventType { r#type, sub_type })
    }

    #[test]
    fn labels_follow_ciliums_flow_and_drop_handlers() {
        let trace = Flow {
            verdict: Verdict::Forwarded as i32,
            event_type: event(event_type::TRACE, 5),
            l4: udp(),
            ..Default::default()
        };
        assert_eq!(
            flow_labels(&trace),
            ["UDP", "Trace", "from-endpoint", "FORWARDED"]
        );
        assert_eq!(drop_labels(&trace), None);

        let drop = Flow {
            verdict: Verdict::Dropped as i32,
            drop_reason_desc: DropReason::PolicyDenied as i32,
            event_type: event(event_type::DROP, 133),
            l4: udp(),
            ..Default::default()
        };
        assert_eq!(flow_labels(&drop), ["UDP", "Drop", "", "DROPPED"]);
        assert_eq!(drop_labels(&drop), Some(["POLICY_DENIED", "UDP"]));

        let http = Flow {
            verdict: Verdict::Dropped as i32,
            event_type: event(event_type::ACCESS_LOG, 0),
            l4: Some(Layer4 {
                protocol: Some(layer4::Protocol::Tcp(flow::Tcp::default())),
            }),
            l7: Some(Layer7 {
                record: Some(layer7::Record::Http(flow::Http::default())),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(flow_labels(&http), ["HTTP", "L7", "HTTP", "DROPPED"]);
        // An L7 denial carries no datapath drop reason.
        assert_eq!(drop_labels(&http), Some(["DROP_REASON_UNKNOWN", "HTTP"]));

        let verdict = Flow {
            event_type: event(event_type::POLICY_VERDICT, 0),
            ..Default::default()
        };
        assert_eq!(
            flow_labels(&verdict),
            ["Unknown L4", "PolicyVerdict", "", "VERDICT_UNKNOWN"]
        );
    }

    #[test]
    fn sock_flows_are_unknown_with_their_type_number_as_ciliums_handler_names_them() {
        let sock = Flow {
            verdict: Verdict::Forwarded as i32,
            event_type: event(event_type::TRACE_SOCK, 1),
            l4: Some(Layer4 {
                protocol: Some(layer4::Protocol::Tcp(flow::Tcp::default())),
            }),
            ..Default::default()
        };
        assert_eq!(
            flow_labels(&sock),
            ["Unknown flow", "Unknown", "7", "FORWARDED"]
        );
        assert_eq!(event_type::TRACE_SOCK.to_string(), flow_labels(&sock)[2]);
    }

    #[test]
    fn counts_per_series() {
        let m = FlowMetrics::default();
        let drop = Flow {
            verdict: Verdict::Dropped as i32,
            drop_reason_desc: DropReason::PolicyDenied as i32,
            event_type: event(event_type::DROP, 133),
            l4: udp(),
            ..Default::default()
        };
        m.observe(&drop);
        m.observe(&drop);
        let c = m.snapshot();
        assert_eq!(c.flows[&["UDP", "Drop", "", "DROPPED"]], 2);
        assert_eq!(c.drops[&["POLICY_DENIED", "UDP"]], 2);
        assert_eq!(c.flows.len(), 1);
    }
}
