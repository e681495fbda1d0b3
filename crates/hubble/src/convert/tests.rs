use super::*;

use std::time::Duration;

use api::models::L7Dns;

fn pods() -> Pods {
    let mut pods = Pods::new();
    pods.insert(
        7,
        PodRef {
            namespace: "shop".into(),
            name: "client".into(),
        },
    );
    pods.insert(
        8,
        PodRef {
            namespace: String::new(),
            name: "server".into(),
        },
    );
    pods
}

fn udp_drop() -> MonitorEvent {
    MonitorEvent {
        kind: "drop".into(),
        endpoint: 8,
        reason: 133,
        reason_text: "Policy denied".into(),
        direction: "ingress".into(),
        ct_state: "new".into(),
        protocol: 17,
        src_ip: "10.0.0.5".into(),
        dst_ip: "10.0.0.6".into(),
        src_port: 40000,
        dst_port: 53,
        src_identity: 1001,
        dst_identity: 1002,
        src_labels: vec![
            "k8s:app=client".into(),
            "k8s:io.kubernetes.pod.namespace=shop".into(),
        ],
        dst_labels: vec![
            "k8s:app=server".into(),
            "k8s:io.kubernetes.pod.namespace=shop".into(),
        ],
        src_endpoint: 7,
        dst_endpoint: 8,
        ..Default::default()
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn a_drop_is_a_dropped_l3_l4_flow_with_cilium_numbers_and_both_pods() {
    let f = to_flow(&udp_drop(), &pods(), "node-a", at(1_700_000_000)).unwrap();
    assert_eq!(f.verdict, Verdict::Dropped as i32);
    assert_eq!(f.drop_reason_desc, DropReason::PolicyDenied as i32);
    assert_eq!(f.drop_reason, 133);
    assert_eq!(
        f.event_type,
        Some(CiliumEventType {
            r#type: 1,
            sub_type: 133
        })
    );
    assert_eq!(f.r#type, FlowType::L3L4 as i32);
    assert_eq!(f.node_name, "node-a");
    assert_eq!(f.time.unwrap().seconds, 1_700_000_000);
    assert_eq!(f.traffic_direction, TrafficDirection::Ingress as i32);
    assert_eq!(f.is_reply, None, "a drop does not know");
    assert_eq!(f.summary, "UDP");
    let ip = f.ip.unwrap();
    assert_eq!(
        (ip.source.as_str(), ip.destination.as_str()),
        ("10.0.0.5", "10.0.0.6")
    );
    assert_eq!(
        f.l4.unwrap().protocol,
        Some(layer4::Protocol::Udp(flow::Udp {
            source_port: 40000,
            destination_port: 53
        }))
    );
    let src = f.source.unwrap();
    assert_eq!((src.id, src.identity), (7, 1001));
    assert_eq!(
        (src.namespace.as_str(), src.pod_name.as_str()),
        ("shop", "client")
    );
    assert_eq!(src.labels[0], "k8s:app=client");
    // No namespace from the plugin: the identity's label gives it.
    let dst = f.destination.unwrap();
    assert_eq!(
        (dst.namespace.as_str(), dst.pod_name.as_str()),
        ("shop", "server")
    );
}

#[test]
fn remote_peers_have_no_pod_name() {
    let mut ev = udp_drop();
    ev.src_endpoint = 0;
    let f = to_flow(&ev, &pods(), "n", at(1)).unwrap();
    let src = f.source.unwrap();
    assert_eq!((src.id, src.pod_name.as_str()), (0, ""));
    assert_eq!(src.namespace, "shop");
}

#[test]
fn ipv6_flows_have_ip_version_ipv6_and_their_addresses() {
    let f = to_flow(&udp_drop(), &pods(), "n", at(1)).unwrap();
    assert_eq!(f.ip.unwrap().ip_version, IpVersion::IPv4 as i32);

    let mut ev = udp_drop();
    ev.src_ip = "f00d::a0a:0:0:2".into();
    ev.dst_ip = "f00d::a0a:0:0:3".into();
    let f = to_flow(&ev, &pods(), "n", at(1)).unwrap();
    let ip = f.ip.unwrap();
    assert_eq!(ip.ip_version, IpVersion::IPv6 as i32);
    assert_eq!(
        (ip.source.as_str(), ip.destination.as_str()),
        ("f00d::a0a:0:0:2", "f00d::a0a:0:0:3")
    );

    // IPv6's own drop reasons have their names; one unknown has none.
    for (code, desc) in [
        (150, DropReason::UnknownL3TargetAddress as i32),
        (156, DropReason::InvalidIpv6ExtensionHeader as i32),
        (175, DropReason::FirstLogicalDatagramFragmentNotFound as i32),
        (199, 0),
    ] {
        ev.reason = code;
        let f = to_flow(&ev, &pods(), "n", at(1)).unwrap();
        assert_eq!((f.drop_reason, f.drop_reason_desc), (u32::from(code), desc));
    }

    ev.protocol = 58;
    let f = to_flow(&ev, &pods(), "n", at(1)).unwrap();
    assert_eq!(f.summary, "ICMPv6");
    assert!(matches!(
        f.l4.unwrap().protocol,
        Some(layer4::Protocol::IcmPv6(_))
    ));
}

#[test]
fn verdicts_traces_and_their_details() {
    let mut deny = udp_drop();
    deny.kind = "policy-verdict".into();
    deny.verdict = "deny".into();
    deny.match_type = "none".into();
    let f = to_flow(&deny, &pods(), "n", at(1)).unwrap();
    assert_eq!(f.verdict, Verdict::Dropped as i32);
    assert_eq!(f.drop_reason_desc, DropReason::PolicyDenied as i32);
    assert_eq!(f.event_type.unwrap().r#type, 5);
    assert_eq!(f.is_reply, Some(false));

    let mut allow = deny.clone();
    allow.verdict = "allow".into();
    allow.match_type = "L3-L4".into();
    let f = to_flow(&allow, &pods(), "n", at(1)).unwrap();
    assert_eq!(
        (f.verdict, f.drop_reason_desc),
        (Verdict::Forwarded as i32, 0)
    );
    assert_eq!(f.policy_match_type, 2, "Cilium numbers L3-L4 2");

    let trace = MonitorEvent {
        kind: "trace".into(),
        observation_point: "to-endpoint".into(),
        ct_state: "reply".into(),
        protocol: 6,
        tcp_flags: vec!["SYN".into(), "ACK".into()],
        ..udp_drop()
    };
    let f = to_flow(&trace, &pods(), "n", at(1)).unwrap();
    assert_eq!(f.verdict, Verdict::Forwarded as i32);
    assert_eq!(
        f.trace_observation_point,
        TraceObservationPoint::ToEndpoint as i32
    );
    assert_eq!(f.trace_reason, TraceReason::Reply as i32);
    assert_eq!(
        f.event_type.unwrap(),
        CiliumEventType {
            r#type: 4,
            sub_type: 0
        }
    );
    assert_eq!(f.is_reply, Some(true));
    let Some(layer4::Protocol::Tcp(tcp)) = f.l4.unwrap().protocol else {
        panic!("tcp")
    };
    let flags = tcp.flags.unwrap();
    assert!(flags.syn && flags.ack && !flags.fin && !flags.rst);
    assert_eq!(f.summary, "TCP Flags: SYN, ACK");
    assert_eq!(tcp.destination_port, 53);
}

#[test]
fn events_that_are_no_flows() {
    for kind in ["lost", "debug"] {
        let ev = MonitorEvent {
            kind: kind.into(),
            ..Default::default()
        };
        assert!(to_flow(&ev, &pods(), "n", at(1)).is_none(), "{kind}");
    }
}

#[test]
fn proxy_drop_codes_are_ciliums() {
    let mut ev = udp_drop();
    ev.reason = 178;
    let f = to_flow(&ev, &pods(), "n", at(1)).unwrap();
    assert_eq!(f.drop_reason_desc, DropReason::SocketLookupFailed as i32);
    assert_eq!(f.event_type.unwrap().sub_type, 178);
}

fn l7_event(record: L7Record) -> MonitorEvent {
    MonitorEvent {
        kind: "l7".into(),
        timestamp_ns: 1_700_000_000_123_000_000,
        direction: "ingress".into(),
        protocol: 6,
        l7: Some(record),
        ..udp_drop()
    }
}

#[test]
fn l7_records_keep_their_own_time_and_details() {
    let http = l7_event(L7Record {
        protocol: "http".into(),
        verdict: "Denied".into(),
        method: "GET".into(),
        path: "/private".into(),
        host: "server:80".into(),
        status: 403,
        proxy_port: 15001,
        ..Default::default()
    });
    let f = to_flow(&http, &pods(), "n", at(1)).unwrap();
    assert_eq!(f.r#type, FlowType::L7 as i32);
    assert_eq!(f.verdict, Verdict::Dropped as i32);
    assert_eq!(f.event_type.unwrap().r#type, 129);
    assert_eq!(f.proxy_port, 15001);
    let t = f.time.unwrap();
    assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
    let l7 = f.l7.unwrap();
    let Some(layer7::Record::Http(h)) = l7.record else {
        panic!("http")
    };
    assert_eq!((h.code, h.method.as_str()), (403, "GET"));
    assert_eq!(h.url, "http://server:80/private");
    assert_eq!(h.protocol, "HTTP/1.1");
    assert_eq!(
        to_flow(&http, &pods(), "n", at(1)).unwrap().summary,
        "HTTP/1.1 403 (GET http://server:80/private)"
    );

    let kafka = l7_event(L7Record {
        protocol: "kafka".into(),
        verdict: "Forwarded".into(),
        method: "produce".into(),
        topics: vec!["orders".into()],
        ..Default::default()
    });
    let f = to_flow(&kafka, &pods(), "n", at(1)).unwrap();
    assert_eq!(f.verdict, Verdict::Forwarded as i32);
    let Some(layer7::Record::Kafka(k)) = f.l7.unwrap().record else {
        panic!("kafka")
    };
    assert_eq!(
        (k.api_key.as_str(), k.topic.as_str()),
        ("produce", "orders")
    );

    let dns = l7_event(L7Record {
        protocol: "dns".into(),
        verdict: "Forwarded".into(),
        dns: Some(L7Dns {
            kind: "response".into(),
            query: "example.com".into(),
            qtypes: vec!["A".into()],
            ips: vec!["192.0.2.1".into()],
            ttl: 60,
            ..Default::default()
        }),
        ..Default::default()
    });
    let l7 = to_flow(&dns, &pods(), "n", at(1)).unwrap().l7.unwrap();
    assert_eq!(l7.r#type, L7FlowType::Response as i32);
    let Some(layer7::Record::Dns(d)) = l7.record else {
        panic!("dns")
    };
    assert_eq!((d.query.as_str(), d.ttl), ("example.com", 60));
    assert_eq!(d.ips, ["192.0.2.1"]);
}
