use super::*;

use crate::proto::flow::{self, CiliumEventType, EventTypeFilter, Layer4, Layer7, Verdict};

fn ep(ns: &str, pod: &str, labels: &[&str], identity: u32) -> Endpoint {
    Endpoint {
        namespace: ns.into(),
        pod_name: pod.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        identity,
        ..Default::default()
    }
}

fn tcp_flow(verdict: Verdict, dport: u32) -> Flow {
    Flow {
        verdict: verdict as i32,
        ip: Some(flow::Ip {
            source: "10.1.0.5".into(),
            destination: "10.1.0.6".into(),
            ..Default::default()
        }),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Tcp(flow::Tcp {
                source_port: 40000,
                destination_port: dport,
                flags: None,
            })),
        }),
        source: Some(ep(
            "shop",
            "client-7d9",
            &["k8s:app=client", "k8s:tier=front"],
            1001,
        )),
        destination: Some(ep("shop", "server-0", &["k8s:app=server"], 1002)),
        event_type: Some(CiliumEventType {
            r#type: 1,
            sub_type: 133,
        }),
        node_name: "node-a".into(),
        ..Default::default()
    }
}

fn only(f: FlowFilter) -> FlowFilters {
    FlowFilters::new(&[f], &[]).unwrap()
}

#[test]
fn no_filter_passes_everything() {
    assert!(FlowFilters::default().matches(&tcp_flow(Verdict::Forwarded, 80)));
}

#[test]
fn ips_by_address_or_prefix() {
    let f = tcp_flow(Verdict::Forwarded, 80);
    let by = |src: &[&str], dst: &[&str]| {
        only(FlowFilter {
            source_ip: src.iter().map(|s| s.to_string()).collect(),
            destination_ip: dst.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .matches(&f)
    };
    assert!(by(&["10.1.0.5"], &[]));
    assert!(by(&["10.9.9.9", "10.1.0.0/24"], &["10.1.0.6"]));
    assert!(!by(&["10.1.0.6"], &[]));
    assert!(!by(&[], &["10.2.0.0/16"]));
    assert!(FlowFilters::new(
        &[FlowFilter {
            source_ip: vec!["10.1.0.300".into()],
            ..Default::default()
        }],
        &[]
    )
    .is_err());
}

#[test]
fn pods_by_namespace_and_name_prefix() {
    let f = tcp_flow(Verdict::Forwarded, 80);
    let src = |p: &str| {
        only(FlowFilter {
            source_pod: vec![p.into()],
            ..Default::default()
        })
        .matches(&f)
    };
    assert!(src("shop/client"));
    assert!(src("shop/"));
    assert!(!src("shop/server"));
    assert!(!src("client"), "no namespace means default");
    assert!(only(FlowFilter {
        destination_pod: vec!["other/x".into(), "shop/server-0".into()],
        ..Default::default()
    })
    .matches(&f));
}

#[test]
fn labels_as_selectors_with_or_without_source() {
    let f = tcp_flow(Verdict::Forwarded, 80);
    let src = |s: &str| {
        only(FlowFilter {
            source_label: vec![s.into()],
            ..Default::default()
        })
        .matches(&f)
    };
    assert!(src("k8s:app=client"));
    assert!(src("app=client"));
    assert!(src("app=client,tier=front"));
    assert!(!src("app=client,tier=back"));
    assert!(src("tier"));
    assert!(!src("!tier"));
    assert!(src("app!=server"));
    assert!(!src("reserved:app=client"));
    assert!(!only(FlowFilter {
        destination_label: vec!["app=client".into()],
        ..Default::default()
    })
    .matches(&f));
}

#[test]
fn verdict_protocol_ports_and_event_type() {
    let dropped = tcp_flow(Verdict::Dropped, 80);
    let forwarded = tcp_flow(Verdict::Forwarded, 8080);
    let f = only(FlowFilter {
        verdict: vec![Verdict::Dropped as i32],
        ..Default::default()
    });
    assert!(f.matches(&dropped) && !f.matches(&forwarded));

    let f = only(FlowFilter {
        protocol: vec!["TCP".into()],
        destination_port: vec!["8080".into()],
        ..Default::default()
    });
    assert!(f.matches(&forwarded) && !f.matches(&dropped));
    assert!(!only(FlowFilter {
        protocol: vec!["udp".into()],
        ..Default::default()
    })
    .matches(&forwarded));
    assert!(only(FlowFilter {
        source_port: vec!["40000".into()],
        ..Default::default()
    })
    .matches(&forwarded));

    let mut http = forwarded.clone();
    http.l7 = Some(Layer7 {
        record: Some(layer7::Record::Http(flow::Http::default())),
        ..Default::default()
    });
    let f = only(FlowFilter {
        protocol: vec!["http".into()],
        ..Default::default()
    });
    assert!(f.matches(&http) && !f.matches(&forwarded));

    let drop_type = |sub: Option<i32>| {
        only(FlowFilter {
            event_type: vec![EventTypeFilter {
                r#type: 1,
                match_sub_type: sub.is_some(),
                sub_type: sub.unwrap_or(0),
            }],
            ..Default::default()
        })
    };
    assert!(drop_type(None).matches(&dropped));
    assert!(drop_type(Some(133)).matches(&dropped));
    assert!(!drop_type(Some(181)).matches(&dropped));
    assert!(FlowFilters::new(
        &[FlowFilter {
            destination_port: vec!["http".into()],
            ..Default::default()
        }],
        &[]
    )
    .is_err());
}

#[test]
fn whitelist_is_any_of_blacklist_is_none_of() {
    let to_80 = tcp_flow(Verdict::Forwarded, 80);
    let to_81 = tcp_flow(Verdict::Forwarded, 81);
    let to_82 = tcp_flow(Verdict::Forwarded, 82);
    let port = |p: &str| FlowFilter {
        destination_port: vec![p.into()],
        ..Default::default()
    };
    let f = FlowFilters::new(&[port("80"), port("81")], &[]).unwrap();
    assert!(f.matches(&to_80) && f.matches(&to_81) && !f.matches(&to_82));
    let f = FlowFilters::new(&[], &[port("81")]).unwrap();
    assert!(f.matches(&to_80) && !f.matches(&to_81));
    // All fields of one filter must hold.
    let f = only(FlowFilter {
        destination_port: vec!["80".into()],
        verdict: vec![Verdict::Dropped as i32],
        ..Default::default()
    });
    assert!(!f.matches(&to_80));
}
