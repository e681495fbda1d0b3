//! The generated types print in protobuf's JSON mapping with proto field
//! names, as Cilium's flow type does for `hubble observe -o json`.

use hubble::proto::flow::{
    layer4, CiliumEventType, DropReason, Endpoint, Flow, Layer4, Udp, Verdict,
};

#[test]
fn a_flow_prints_like_hubbles_json() {
    let flow = Flow {
        time: Some(hubble::timestamp::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5_000_000,
        }),
        verdict: Verdict::Dropped as i32,
        drop_reason: 133,
        drop_reason_desc: DropReason::PolicyDenied as i32,
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Udp(Udp {
                source_port: 40000,
                destination_port: 53,
            })),
        }),
        source: Some(Endpoint {
            pod_name: "client".into(),
            namespace: "shop".into(),
            labels: vec!["k8s:app=client".into()],
            ..Default::default()
        }),
        event_type: Some(CiliumEventType {
            r#type: 1,
            sub_type: 133,
        }),
        is_reply: Some(false),
        summary: "UDP".into(),
        ..Default::default()
    };
    let v: serde_json::Value = serde_json::to_value(&flow).unwrap();
    assert_eq!(v["time"], "2023-11-14T22:13:20.005Z");
    assert_eq!(v["verdict"], "DROPPED");
    assert_eq!(v["drop_reason_desc"], "POLICY_DENIED");
    assert_eq!(v["l4"]["UDP"]["destination_port"], 53);
    assert_eq!(v["source"]["pod_name"], "client");
    assert_eq!(v["event_type"]["sub_type"], 133);
    assert_eq!(v["is_reply"], false);
    assert_eq!(v["Summary"], "UDP");
    // Unset fields are left out, as protojson does.
    assert!(v.get("destination").is_none() && v.get("node_name").is_none());
    // And it reads back.
    let back: Flow = serde_json::from_value(v).unwrap();
    assert_eq!(back, flow);
}
