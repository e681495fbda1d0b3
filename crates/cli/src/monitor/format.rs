//! One line per datapath event, worded like `cilium monitor`.

use api::{monitor_kind, MonitorEvent};

use crate::proto;

/// The first lines `cilium monitor` prints.
pub fn banner(cpus: usize) -> String {
    format!(
        "Listening for events on {cpus} CPUs with 64x4096 of shared memory\nPress Ctrl-C to quit\n"
    )
}

/// The default (non-verbose) line for an event, without a newline.
pub fn line(ev: &MonitorEvent) -> String {
    let summary = connection_summary(ev);
    match ev.kind.as_str() {
        monitor_kind::DROP => format!(
            "xx drop ({}) flow 0x0 to endpoint {}, ifindex {}, identity {}->{}: {summary}",
            reason(ev),
            ev.endpoint,
            ev.ifindex,
            ev.src_identity,
            ev.dst_identity
        ),
        monitor_kind::TRACE => format!(
            "{} flow 0x0 , identity {}->{} state {} ifindex {}: {summary}",
            observation_point(&ev.observation_point, ev.endpoint),
            ev.src_identity,
            ev.dst_identity,
            if ev.ct_state.is_empty() {
                "unknown"
            } else {
                &ev.ct_state
            },
            ev.ifindex
        ),
        monitor_kind::POLICY_VERDICT => format!(
            "Policy verdict log: flow 0x0 local EP ID {}, remote ID {}, proto {}, {}, action {}, match {}, {summary}",
            ev.endpoint,
            remote_identity(ev),
            ev.protocol,
            ev.direction,
            ev.verdict,
            if ev.match_type.is_empty() { "none" } else { &ev.match_type },
        ),
        monitor_kind::DEBUG => format!(
            "CPU {:02}: MARK 0x0 FROM {} DEBUG: {}",
            ev.cpu, ev.endpoint, ev.reason_text
        ),
        monitor_kind::L7 => l7_line(ev),
        other => format!("{other}: endpoint {}: {summary}", ev.endpoint),
    }
}

/// `<- Request http from 12 ([labels]) to 7 ([labels]), identity a->b,
/// verdict Denied PUT http://deathstar/v1/exhaust-port => 403`, as Cilium.
fn l7_line(ev: &MonitorEvent) -> String {
    let Some(l7) = &ev.l7 else {
        return format!("l7: endpoint {}", ev.endpoint);
    };
    if let Some(dns) = &l7.dns {
        return dns_line(ev, l7, dns);
    }
    let request = match l7.protocol.as_str() {
        "kafka" => format!("{} topic {}", l7.method, l7.topics.join(",")),
        _ => format!("{} http://{}{}", l7.method, l7.host, l7.path),
    };
    format!(
        "<- Request {} from {} ([{}]) to {} ([{}]), identity {}->{}, verdict {} {request} => {}",
        l7.protocol,
        ev.src_endpoint,
        ev.src_labels.join(" "),
        ev.dst_endpoint,
        ev.dst_labels.join(" "),
        ev.src_identity,
        ev.dst_identity,
        l7.verdict,
        l7.status
    )
}

/// A DNS query (`<- Request dns ... DNS Query: name. A`) or the answer
/// the pod got (`-> Response dns ... DNS Answer RCode: NoError TTL: 60
/// Answer: '192.0.2.1' Query: name. A`), as Cilium prints them.
fn dns_line(ev: &MonitorEvent, l7: &api::models::L7Record, dns: &api::models::L7Dns) -> String {
    let query = format!("Query: {}. {}", dns.query, dns.qtypes.join(","));
    let sides = format!(
        "{} ([{}]) {} {} ([{}]), identity {}->{}, verdict {}",
        ev.src_endpoint,
        ev.src_labels.join(" "),
        if dns.kind == "response" { "from" } else { "to" },
        ev.dst_endpoint,
        ev.dst_labels.join(" "),
        ev.src_identity,
        ev.dst_identity,
        l7.verdict
    );
    if dns.kind == "response" {
        let answers: Vec<String> = dns.cnames.iter().chain(&dns.ips).cloned().collect();
        format!(
            "-> Response dns to {sides} DNS Answer RCode: {} TTL: {} Answer: '{}' {query}",
            rcode_name(dns.rcode),
            dns.ttl,
            answers.join(",")
        )
    } else {
        format!("<- Request dns from {sides} DNS {query}")
    }
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NoError".into(),
        1 => "FormErr".into(),
        2 => "ServFail".into(),
        3 => "NXDomain".into(),
        4 => "NotImp".into(),
        5 => "Refused".into(),
        other => other.to_string(),
    }
}

/// The line a client that fell behind sees, as in Cilium.
pub fn lost(ev: &MonitorEvent) -> String {
    format!("Lost {} events", ev.lost)
}

/// `Identity 256 [k8s:app=web] (endpoint 12) -> 257 [k8s:app=db]`: both
/// sides as the agent resolved them.
pub fn identities(ev: &MonitorEvent) -> String {
    let side = |id: u32, labels: &[String], ep: u16| {
        let mut s = format!("{id} [{}]", labels.join(", "));
        if ep != 0 {
            s.push_str(&format!(" (endpoint {ep})"));
        }
        s
    };
    format!(
        "Identity {} -> {}",
        side(ev.src_identity, &ev.src_labels, ev.src_endpoint),
        side(ev.dst_identity, &ev.dst_labels, ev.dst_endpoint)
    )
}

/// `-v`: a separator, a header naming CPU, endpoint and size, then the
/// packet's addresses and both identities with their labels, like Cilium's
/// verbose mode (without the hex dump).
pub fn verbose(ev: &MonitorEvent) -> String {
    let what = match ev.kind.as_str() {
        monitor_kind::DROP => format!(
            "DROP: {} bytes, reason {}, to endpoint {}, identity {}->{}",
            ev.length,
            reason(ev),
            ev.endpoint,
            ev.src_identity,
            ev.dst_identity
        ),
        monitor_kind::TRACE => format!(
            "{}: {} bytes, state {}, identity {}->{}, ifindex {}",
            ev.observation_point,
            ev.length,
            ev.ct_state,
            ev.src_identity,
            ev.dst_identity,
            ev.ifindex
        ),
        monitor_kind::POLICY_VERDICT => {
            return format!("{SEPARATOR}\n{}\n{}", line(ev), identities(ev));
        }
        monitor_kind::DEBUG => return line(ev),
        other => other.to_string(),
    };
    format!(
        "{SEPARATOR}\nCPU {:02}: MARK 0x0 FROM {} {what}\n{}\n{}",
        ev.cpu,
        ev.endpoint,
        identities(ev),
        packet_details(ev)
    )
}

const SEPARATOR: &str =
    "------------------------------------------------------------------------------";

fn reason(ev: &MonitorEvent) -> String {
    if ev.reason_text.is_empty() {
        format!("{}", ev.reason)
    } else {
        ev.reason_text.clone()
    }
}

fn remote_identity(ev: &MonitorEvent) -> u32 {
    // The remote side is the source for ingress, the destination for egress.
    if ev.direction == "egress" {
        ev.dst_identity
    } else {
        ev.src_identity
    }
}

/// `-> endpoint 1234`, `-> stack`, `<- endpoint 1234`, ...
pub fn observation_point(point: &str, endpoint: u16) -> String {
    let (arrow, place) = match point.split_once('-') {
        Some(("to", place)) => ("->", place),
        Some(("from", place)) => ("<-", place),
        _ => return point.to_string(),
    };
    if place == "endpoint" {
        format!("{arrow} endpoint {endpoint}")
    } else {
        format!("{arrow} {place}")
    }
}

/// `10.0.0.1:3456 -> 10.0.0.2:80 tcp SYN, ACK`; IPv6 addresses with a port
/// in brackets (`[f00d::1]:3456`), as Cilium joins host and port.
pub fn connection_summary(ev: &MonitorEvent) -> String {
    let ports = matches!(ev.protocol, proto::TCP | proto::UDP | proto::SCTP);
    let endpoints = if ports {
        format!(
            "{} -> {}",
            host_port(&ev.src_ip, ev.src_port),
            host_port(&ev.dst_ip, ev.dst_port)
        )
    } else {
        format!("{} -> {}", ev.src_ip, ev.dst_ip)
    };
    match ev.protocol {
        proto::TCP if ev.tcp_flags.is_empty() => format!("{endpoints} tcp"),
        proto::TCP => format!("{endpoints} tcp {}", ev.tcp_flags.join(", ")),
        proto::UDP => format!("{endpoints} udp"),
        proto::ICMP => format!("{endpoints} icmp"),
        proto::ICMPV6 => format!("{endpoints} icmpv6"),
        p => format!("{endpoints} {}", proto::name(p).to_lowercase()),
    }
}

fn host_port(ip: &str, port: u16) -> String {
    if is_ipv6(ip) {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn is_ipv6(ip: &str) -> bool {
    ip.contains(':')
}

fn packet_details(ev: &MonitorEvent) -> String {
    let ip = format!(
        "{} {{SrcIP={} DstIP={} Protocol={}}}",
        if is_ipv6(&ev.src_ip) { "IPv6" } else { "IPv4" },
        ev.src_ip,
        ev.dst_ip,
        proto::name(ev.protocol)
    );
    match ev.protocol {
        proto::TCP => format!(
            "{ip}\nTCP  {{SrcPort={} DstPort={} {}}}",
            ev.src_port,
            ev.dst_port,
            ev.tcp_flags.join("=true ") + if ev.tcp_flags.is_empty() { "" } else { "=true" }
        ),
        proto::UDP => format!(
            "{ip}\nUDP  {{SrcPort={} DstPort={}}}",
            ev.src_port, ev.dst_port
        ),
        _ => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_event(kind: &str) -> MonitorEvent {
        MonitorEvent {
            kind: kind.into(),
            cpu: 1,
            endpoint: 1234,
            ifindex: 12,
            protocol: 6,
            src_ip: "10.200.0.5".into(),
            dst_ip: "10.200.0.6".into(),
            src_port: 3456,
            dst_port: 80,
            tcp_flags: vec!["SYN".into()],
            length: 74,
            ..Default::default()
        }
    }

    #[test]
    fn drop_line() {
        let mut ev = tcp_event("drop");
        ev.src_ip = "10.200.0.7".into();
        ev.src_identity = 257;
        ev.dst_identity = 256;
        ev.reason = 133;
        ev.reason_text = "Policy denied".into();
        assert_eq!(
            line(&ev),
            "xx drop (Policy denied) flow 0x0 to endpoint 1234, ifindex 12, identity 257->256: \
             10.200.0.7:3456 -> 10.200.0.6:80 tcp SYN"
        );
    }

    #[test]
    fn trace_line() {
        let mut ev = tcp_event("trace");
        ev.observation_point = "to-endpoint".into();
        ev.src_identity = 256;
        ev.dst_identity = 257;
        ev.ct_state = "new".into();
        assert_eq!(
            line(&ev),
            "-> endpoint 1234 flow 0x0 , identity 256->257 state new ifindex 12: \
             10.200.0.5:3456 -> 10.200.0.6:80 tcp SYN"
        );
    }

    #[test]
    fn policy_verdict_line() {
        let mut ev = tcp_event("policy-verdict");
        ev.src_identity = 256;
        ev.dst_identity = 257;
        ev.direction = "ingress".into();
        ev.verdict = "allow".into();
        ev.match_type = "L3-L4".into();
        assert_eq!(
            line(&ev),
            "Policy verdict log: flow 0x0 local EP ID 1234, remote ID 256, proto 6, ingress, \
             action allow, match L3-L4, 10.200.0.5:3456 -> 10.200.0.6:80 tcp SYN"
        );
        ev.direction = "egress".into();
        assert!(line(&ev).contains("remote ID 257, proto 6, egress"));
    }

    #[test]
    fn observation_points() {
        assert_eq!(observation_point("to-endpoint", 7), "-> endpoint 7");
        assert_eq!(observation_point("from-endpoint", 7), "<- endpoint 7");
        assert_eq!(observation_point("to-stack", 7), "-> stack");
        assert_eq!(observation_point("from-overlay", 7), "<- overlay");
        assert_eq!(observation_point("weird", 7), "weird");
    }

    #[test]
    fn summaries_per_protocol() {
        let mut ev = tcp_event("trace");
        ev.tcp_flags = vec!["SYN".into(), "ACK".into()];
        assert!(connection_summary(&ev).ends_with("tcp SYN, ACK"));
        ev.protocol = 17;
        assert_eq!(
            connection_summary(&ev),
            "10.200.0.5:3456 -> 10.200.0.6:80 udp"
        );
        ev.protocol = 1;
        assert_eq!(connection_summary(&ev), "10.200.0.5 -> 10.200.0.6 icmp");
    }

    #[test]
    fn ipv6_addresses_with_ports_are_bracketed() {
        let mut ev = tcp_event("drop");
        ev.src_ip = "f00d::a0a:0:0:2".into();
        ev.dst_ip = "f00d::a0a:0:0:3".into();
        ev.dst_port = 8080;
        ev.reason_text = "Policy denied".into();
        assert!(
            line(&ev).ends_with(": [f00d::a0a:0:0:2]:3456 -> [f00d::a0a:0:0:3]:8080 tcp SYN"),
            "{}",
            line(&ev)
        );
        assert!(verbose(&ev)
            .contains("\nIPv6 {SrcIP=f00d::a0a:0:0:2 DstIP=f00d::a0a:0:0:3 Protocol=TCP}\n"));
        ev.protocol = 58;
        ev.tcp_flags.clear();
        assert_eq!(
            connection_summary(&ev),
            "f00d::a0a:0:0:2 -> f00d::a0a:0:0:3 icmpv6"
        );
    }

    #[test]
    fn verbose_drop_has_header_and_packet() {
        let mut ev = tcp_event("drop");
        ev.reason_text = "Policy denied".into();
        let text = verbose(&ev);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("-----"));
        assert_eq!(
            lines[1],
            "CPU 01: MARK 0x0 FROM 1234 DROP: 74 bytes, reason Policy denied, to endpoint 1234, identity 0->0"
        );
        assert_eq!(lines[2], "Identity 0 [] -> 0 []");
        assert_eq!(
            lines[3],
            "IPv4 {SrcIP=10.200.0.5 DstIP=10.200.0.6 Protocol=TCP}"
        );
        assert_eq!(lines[4], "TCP  {SrcPort=3456 DstPort=80 SYN=true}");
    }

    #[test]
    fn verbose_names_both_identities_and_lost_events_are_counted() {
        let mut ev = tcp_event("policy-verdict");
        ev.src_identity = 300;
        ev.src_labels = vec!["k8s:app=web".into()];
        ev.src_endpoint = 12;
        ev.dst_identity = 301;
        ev.dst_labels = vec!["k8s:app=db".into(), "k8s:env=prod".into()];
        let text = verbose(&ev);
        assert!(
            text.ends_with(
                "\nIdentity 300 [k8s:app=web] (endpoint 12) -> 301 [k8s:app=db, k8s:env=prod]"
            ),
            "{text}"
        );
        let lost_ev = MonitorEvent {
            kind: "lost".into(),
            lost: 17,
            ..Default::default()
        };
        assert_eq!(lost(&lost_ev), "Lost 17 events");
    }

    #[test]
    fn banner_text() {
        assert_eq!(
            banner(2),
            "Listening for events on 2 CPUs with 64x4096 of shared memory\nPress Ctrl-C to quit\n"
        );
    }
}
