use super::*;
use hubble::proto::flow::{
    CiliumEventType, Dns, Endpoint, Http, Ip, Layer4, Layer7, Tcp, TrafficDirection, Udp,
};
use hubble::proto::observer::get_flows_response::ResponseTypes;

fn ep(ns: &str, pod: &str, identity: u32) -> Option<Endpoint> {
    Some(Endpoint {
        namespace: ns.into(),
        pod_name: pod.into(),
        identity,
        ..Default::default()
    })
}

/// A denied UDP datagram from shop/intruder to shop/server:53.
fn drop_flow() -> Flow {
    Flow {
        time: Some(Timestamp {
            seconds: 1_709_251_199,
            nanos: 5_600_000,
        }),
        verdict: Verdict::Dropped as i32,
        drop_reason_desc: 133,
        ip: Some(Ip {
            source: "10.0.0.5".into(),
            destination: "10.0.0.6".into(),
            ..Default::default()
        }),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Udp(Udp {
                source_port: 40000,
                destination_port: 53,
            })),
        }),
        source: ep("shop", "intruder", 12345),
        destination: ep("shop", "server", 2),
        event_type: Some(CiliumEventType {
            r#type: 1,
            sub_type: 133,
        }),
        summary: "UDP".into(),
        ..Default::default()
    }
}

#[test]
fn stamp_milli_is_gos() {
    let t = Timestamp {
        seconds: 1_704_164_645,
        nanos: 7_000_000,
    };
    assert_eq!(stamp_milli(Some(&t), 0), "Jan  2 03:04:05.007");
    assert_eq!(stamp_milli(Some(&t), 3600), "Jan  2 04:04:05.007");
    assert_eq!(stamp_milli(None, 0), "N/A");
}

#[test]
fn compact_drop_line_reads_like_hubbles() {
    assert_eq!(
        compact(&drop_flow(), 0),
        "Feb 29 23:59:59.005: shop/intruder:40000 (ID:12345) <> shop/server:53 (world) \
         Policy denied DROPPED (UDP)"
    );
}

#[test]
fn replies_flip_the_arrow_and_the_sides() {
    let mut f = drop_flow();
    f.verdict = Verdict::Forwarded as i32;
    f.event_type = Some(CiliumEventType {
        r#type: 4,
        sub_type: 0,
    });
    f.is_reply = Some(true);
    let line = compact(&f, 0);
    assert!(
        line.contains(
            ": shop/server:53 (world) <- shop/intruder:40000 (ID:12345) to-endpoint FORWARDED (UDP)"
        ),
        "{line}"
    );
    f.is_reply = Some(false);
    assert!(compact(&f, 0).contains("(ID:12345) -> shop/server:53"));
}

#[test]
fn hosts_without_pods_are_addresses() {
    let mut f = drop_flow();
    f.source = ep("", "", 2);
    f.destination = ep("", "web", 300);
    f.l4 = None;
    assert_eq!(host_names(&f), ("10.0.0.5".into(), "web".into()));
}

#[test]
fn types_of_l7_and_policy_verdicts() {
    let mut f = drop_flow();
    f.l4 = Some(Layer4 {
        protocol: Some(layer4::Protocol::Tcp(Tcp::default())),
    });
    f.l7 = Some(Layer7 {
        r#type: L7FlowType::Request as i32,
        record: Some(layer7::Record::Http(Http {
            code: 403,
            ..Default::default()
        })),
        ..Default::default()
    });
    assert_eq!(flow_type(&f), "http-request");
    f.l7 = Some(Layer7 {
        r#type: L7FlowType::Response as i32,
        record: Some(layer7::Record::Dns(Dns {
            observation_source: "proxy".into(),
            ..Default::default()
        })),
        ..Default::default()
    });
    assert_eq!(flow_type(&f), "dns-response proxy");

    let mut pv = drop_flow();
    pv.event_type = Some(CiliumEventType {
        r#type: 5,
        sub_type: 0,
    });
    pv.policy_match_type = 2;
    pv.traffic_direction = TrafficDirection::Ingress as i32;
    assert_eq!(flow_type(&pv), "policy-verdict:L3-L4 INGRESS");
    assert_eq!(verdict(&pv), "DENIED");
    pv.verdict = Verdict::Forwarded as i32;
    assert_eq!(verdict(&pv), "ALLOWED");
}

#[test]
fn policy_names_follow_the_direction_and_need_a_name_and_kind() {
    let rule = |name: &str, kind: &str| hubble::proto::flow::Policy {
        name: name.into(),
        kind: kind.into(),
        namespace: "shop".into(),
        ..Default::default()
    };
    let mut pv = drop_flow();
    pv.event_type = Some(CiliumEventType {
        r#type: 5,
        sub_type: 0,
    });
    pv.traffic_direction = TrafficDirection::Ingress as i32;
    pv.ingress_denied_by = vec![rule("no-intruders", "CiliumNetworkPolicy")];
    pv.egress_denied_by = vec![rule("elsewhere", "CiliumNetworkPolicy")];
    assert_eq!(
        verdict_with(&pv, true),
        "DENIED BY no-intruders (CiliumNetworkPolicy)"
    );
    assert_eq!(verdict_with(&pv, false), "DENIED");
    pv.verdict = Verdict::Forwarded as i32;
    pv.ingress_allowed_by = vec![
        rule("web", "CiliumNetworkPolicy"),
        rule("", ""),
        rule("dns", "NetworkPolicy"),
    ];
    assert_eq!(
        verdict_with(&pv, true),
        "ALLOWED BY web (CiliumNetworkPolicy), dns (NetworkPolicy)"
    );
    // Drops and traces print no names, as in hubble.
    let mut drop = drop_flow();
    drop.ingress_denied_by = vec![rule("no-intruders", "CiliumNetworkPolicy")];
    assert_eq!(verdict_with(&drop, true), "DROPPED");
}

#[test]
fn a_service_names_a_side_without_a_pod() {
    let mut f = drop_flow();
    f.destination = ep("", "", 16_777_217);
    f.destination_service = Some(hubble::proto::flow::Service {
        name: "web".into(),
        namespace: "shop".into(),
    });
    let (_, dst) = host_names(&f);
    assert_eq!(dst, "shop/web:53");
    f.destination = ep("other", "server", 1000);
    assert_eq!(host_names(&f).1, "shop/server:53");
}

fn response(f: Flow) -> GetFlowsResponse {
    GetFlowsResponse {
        response_types: Some(ResponseTypes::Flow(f.into())),
        node_name: "n1".into(),
        time: None,
    }
}

#[test]
fn json_is_one_flow_object_per_line() {
    let mut p = Printer::new(Output::Json, |_| 0, false);
    let (out, err) = p.response(&response(drop_flow())).unwrap();
    assert!(err.is_empty());
    assert_eq!(out.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"], "DROPPED");
    assert_eq!(v["source"]["pod_name"], "intruder");
    assert_eq!(v["l4"]["UDP"]["destination_port"], 53);

    let mut p = Printer::new(Output::Jsonpb, |_| 0, false);
    let (out, _) = p.response(&response(drop_flow())).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["flow"]["verdict"], "DROPPED");
    assert_eq!(v["node_name"], "n1");
}

#[test]
fn table_aligns_all_rows_at_the_end_or_streams_them() {
    let mut p = Printer::new(Output::Table, |_| 0, false);
    assert_eq!(p.response(&response(drop_flow())).unwrap().0, "");
    let text = p.finish();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("TIMESTAMP "));
    let col = lines[0].find("SOURCE").unwrap();
    assert_eq!(&lines[1][col..col + 13], "shop/intruder");

    let mut p = Printer::new(Output::Table, |_| 0, true);
    let first = p.response(&response(drop_flow())).unwrap().0;
    let second = p.response(&response(drop_flow())).unwrap().0;
    assert_eq!(first.lines().count(), 2, "header and row");
    assert_eq!(second.lines().count(), 1);
}

#[test]
fn lost_events_go_to_stderr() {
    let mut p = Printer::new(Output::Compact, |_| 0, false);
    let r = GetFlowsResponse {
        response_types: Some(ResponseTypes::LostEvents(LostEvent {
            source: LostEventSource::HubbleRingBuffer as i32,
            num_events_lost: 7,
            cpu: None,
        })),
        ..Default::default()
    };
    assert_eq!(
        p.response(&r).unwrap(),
        (
            String::new(),
            "EVENTS LOST: HUBBLE_RING_BUFFER CPU(0) 7\n".into()
        )
    );
}
