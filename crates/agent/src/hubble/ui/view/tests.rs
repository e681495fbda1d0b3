use super::*;
use hubble::proto::flow::{Ip, Layer4, Udp, Workload};

fn pod(ns: &str, name: &str, app: Option<&str>, identity: u32) -> Endpoint {
    Endpoint {
        namespace: ns.into(),
        pod_name: name.into(),
        identity,
        labels: app
            .map(|a| {
                vec![
                    format!("k8s:app={a}"),
                    format!("k8s:io.kubernetes.pod.namespace={ns}"),
                ]
            })
            .unwrap_or_default(),
        ..Default::default()
    }
}

fn flow(src: Endpoint, dst: Endpoint, verdict: Verdict, reply: bool) -> Flow {
    Flow {
        source: Some(src),
        destination: Some(dst),
        verdict: verdict as i32,
        is_reply: Some(reply),
        ip: Some(Ip {
            source: "10.0.0.1".into(),
            destination: "10.0.0.2".into(),
            ..Default::default()
        }),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Udp(Udp {
                source_port: 40000,
                destination_port: 53,
            })),
        }),
        ..Default::default()
    }
}

#[test]
fn a_workload_is_its_app_label_else_workload_pod_or_identity() {
    let app = pod("shop", "client-7f9", Some("client"), 1000);
    assert_eq!(workload(Some(&app), "x"), ("shop".into(), "client".into()));
    let mut owned = pod("shop", "web-1", None, 1001);
    owned.workloads.push(Workload {
        name: "web".into(),
        kind: "Deployment".into(),
    });
    assert_eq!(workload(Some(&owned), "x"), ("shop".into(), "web".into()));
    let bare = pod("", "c1", None, 1002);
    assert_eq!(workload(Some(&bare), "x"), ("".into(), "c1".into()));
    let world = pod("", "", None, 2);
    assert_eq!(workload(Some(&world), "x"), ("".into(), "world".into()));
    let anon = pod("", "", None, 4242);
    assert_eq!(
        workload(Some(&anon), "x"),
        ("".into(), "identity 4242".into())
    );
    assert_eq!(workload(None, "1.2.3.4"), ("".into(), "1.2.3.4".into()));
}

#[test]
fn the_map_groups_flows_by_workload_and_verdict_and_leaves_replies_out() {
    let client = || pod("shop", "client-1", Some("client"), 1000);
    let client2 = || pod("shop", "client-2", Some("client"), 1000);
    let intruder = || pod("shop", "intruder", Some("intruder"), 1001);
    let server = || pod("shop", "server", Some("server"), 1002);
    let flows = [
        flow(client(), server(), Verdict::Forwarded, false),
        flow(client2(), server(), Verdict::Forwarded, false),
        flow(server(), client(), Verdict::Forwarded, true),
        flow(intruder(), server(), Verdict::Dropped, false),
        flow(intruder(), server(), Verdict::Dropped, false),
        flow(intruder(), server(), Verdict::Forwarded, false),
    ];
    let map = service_map(&flows);
    let ids: Vec<&str> = map.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["shop/client", "shop/intruder", "shop/server"]);
    let edges: Vec<(&str, &str, &str, u64)> = map
        .edges
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str(), e.verdict, e.count))
        .collect();
    assert_eq!(
        edges,
        [
            ("shop/client", "shop/server", "forwarded", 2),
            ("shop/intruder", "shop/server", "dropped", 2),
            ("shop/intruder", "shop/server", "forwarded", 1),
        ]
    );
}

#[test]
fn a_dropped_row_names_its_reason_and_rules() {
    let mut f = flow(
        pod("shop", "intruder", Some("intruder"), 1001),
        pod("shop", "server", Some("server"), 1002),
        Verdict::Dropped,
        false,
    );
    f.drop_reason = 181;
    f.summary = "UDP".into();
    f.ingress_denied_by.push(Policy {
        name: "no-intruders".into(),
        namespace: "shop".into(),
        ..Default::default()
    });
    f.egress_allowed_by.push(Policy {
        labels: vec!["k8s:team=a".into()],
        ..Default::default()
    });
    let r = row(7, &f);
    assert_eq!(r.id, 7);
    assert_eq!(r.verdict, "DROPPED");
    assert_eq!(r.reason, hubble::names::drop_reason_text(181));
    assert!(!r.reason.is_empty());
    assert_eq!(r.denied_by, ["shop/no-intruders"]);
    assert_eq!(r.allowed_by, ["k8s:team=a"]);
    assert_eq!(r.source.name, "shop/intruder:40000");
    assert_eq!(r.source.node, "shop/intruder");
    assert_eq!(r.destination.name, "shop/server:53");
    assert_eq!(r.summary, "UDP");

    let ok = row(
        8,
        &flow(
            pod("a", "b", None, 1),
            pod("a", "c", None, 2),
            Verdict::Forwarded,
            false,
        ),
    );
    assert_eq!((ok.verdict.as_str(), ok.reason.as_str()), ("FORWARDED", ""));
}
