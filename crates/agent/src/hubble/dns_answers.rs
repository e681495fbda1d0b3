//! A DNS answer's flow goes from the server to the pod, as Cilium's DNS
//! proxy logs it: the proxy's record (and the monitor's line) keeps the
//! query's sides, so the flow turns them around here.

use hubble::proto::flow::{layer4, layer7, Flow, L7FlowType};

/// Turns a DNS response flow around: endpoints, addresses and ports swap,
/// and it is a reply. Other flows stay as they are.
pub fn from_server(flow: &mut Flow) {
    let answer = flow.l7.as_ref().is_some_and(|l7| {
        l7.r#type == L7FlowType::Response as i32
            && matches!(l7.record, Some(layer7::Record::Dns(_)))
    });
    if !answer {
        return;
    }
    std::mem::swap(&mut flow.source, &mut flow.destination);
    if let Some(ip) = flow.ip.as_mut() {
        std::mem::swap(&mut ip.source, &mut ip.destination);
    }
    match flow.l4.as_mut().and_then(|l4| l4.protocol.as_mut()) {
        Some(layer4::Protocol::Udp(u)) => {
            std::mem::swap(&mut u.source_port, &mut u.destination_port)
        }
        Some(layer4::Protocol::Tcp(t)) => {
            std::mem::swap(&mut t.source_port, &mut t.destination_port)
        }
        _ => {}
    }
    flow.is_reply = Some(true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubble::proto::flow::{Dns, Endpoint, Ip, Layer4, Layer7, Udp};

    fn flow(kind: L7FlowType) -> Flow {
        Flow {
            ip: Some(Ip {
                source: "10.0.0.5".into(),
                destination: "192.0.2.53".into(),
                ..Default::default()
            }),
            l4: Some(Layer4 {
                protocol: Some(layer4::Protocol::Udp(Udp {
                    source_port: 40000,
                    destination_port: 53,
                })),
            }),
            source: Some(Endpoint {
                pod_name: "client".into(),
                ..Default::default()
            }),
            destination: Some(Endpoint {
                identity: 2,
                ..Default::default()
            }),
            l7: Some(Layer7 {
                r#type: kind as i32,
                record: Some(layer7::Record::Dns(Dns::default())),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn answers_come_from_the_server_and_queries_stay() {
        let mut answer = flow(L7FlowType::Response);
        from_server(&mut answer);
        assert_eq!(answer.source.as_ref().unwrap().identity, 2);
        assert_eq!(answer.destination.as_ref().unwrap().pod_name, "client");
        let ip = answer.ip.as_ref().unwrap();
        assert_eq!(
            (ip.source.as_str(), ip.destination.as_str()),
            ("192.0.2.53", "10.0.0.5")
        );
        assert_eq!(
            answer.l4.unwrap().protocol,
            Some(layer4::Protocol::Udp(Udp {
                source_port: 53,
                destination_port: 40000
            }))
        );
        assert_eq!(answer.is_reply, Some(true));
        let mut query = flow(L7FlowType::Request);
        let before = query.clone();
        from_server(&mut query);
        assert_eq!(query, before);
    }
}
