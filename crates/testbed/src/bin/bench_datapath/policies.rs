//! The rules the bench loads, in Cilium's JSON rule format.
//!
//! Steady state (loaded for the whole run):
//! - the server admits the client on the bench ports (IPv4's three and
//!   IPv6's own connection and echo servers; the policy is the same for
//!   both families);
//! - the server admits every filler (`bench-role=filler`) on
//!   `ports_per_filler` ports: fillers x ports entries in its policy map,
//!   the "10,000 other policy entries";
//! - the probe admits only the server, so the client is denied until the
//!   imported rules say otherwise.
//!
//! Imported (the import-to-enforcement measurement): `count` rules selecting
//! the `bench-import=target` endpoints; rule 0 admits the client on the
//! probe port, the others one filler each on one port.

use serde_json::{json, Value};

use testbed::bench::servers::{CONNECT6_PORT, CONNECT_PORT, ECHO6_PORT, IPERF_PORT, SOCKPERF_PORT};

pub const PROBE_PORT: u16 = 7001;
/// Rule label of the imported set, to delete it again between repetitions.
pub const IMPORT_LABEL: &str = "k8s:bench=import";
const STEADY_LABEL: &str = "k8s:bench=steady";
/// First of the filler ports on the server.
const FILLER_PORT_BASE: u16 = 9000;

fn tcp_ports(ports: impl IntoIterator<Item = u16>) -> Value {
    let ports: Vec<Value> = ports
        .into_iter()
        .map(|p| json!({"port": p.to_string(), "protocol": "TCP"}))
        .collect();
    json!([{ "ports": ports }])
}

fn allow_from(selected: (&str, &str), peer: (&str, &str), ports: Value, label: &str) -> Value {
    json!({
        "endpointSelector": {"matchLabels": {selected.0: selected.1}},
        "ingress": [{
            "fromEndpoints": [{"matchLabels": {peer.0: peer.1}}],
            "toPorts": ports,
        }],
        "labels": [label],
    })
}

pub fn steady_state(ports_per_filler: u16) -> String {
    let rules = vec![
        allow_from(
            ("app", "bench-server"),
            ("app", "bench-client"),
            tcp_ports([
                SOCKPERF_PORT,
                IPERF_PORT,
                CONNECT_PORT,
                CONNECT6_PORT,
                ECHO6_PORT,
            ]),
            STEADY_LABEL,
        ),
        allow_from(
            ("app", "bench-server"),
            ("bench-role", "filler"),
            tcp_ports(FILLER_PORT_BASE..FILLER_PORT_BASE + ports_per_filler),
            STEADY_LABEL,
        ),
        allow_from(
            ("app", "bench-probe"),
            ("app", "bench-server"),
            tcp_ports([PROBE_PORT]),
            STEADY_LABEL,
        ),
    ];
    serde_json::to_string_pretty(&rules).expect("rules serialize")
}

pub fn import_set(count: usize) -> String {
    let target = ("bench-import", "target");
    let rules: Vec<Value> = (0..count)
        .map(|i| {
            if i == 0 {
                allow_from(
                    target,
                    ("app", "bench-client"),
                    tcp_ports([PROBE_PORT]),
                    IMPORT_LABEL,
                )
            } else {
                let filler = format!("f{:04}", i);
                let port = 8000 + (i % 1000) as u16;
                allow_from(
                    target,
                    ("bench-filler", &filler),
                    tcp_ports([port]),
                    IMPORT_LABEL,
                )
            }
        })
        .collect();
    serde_json::to_string(&rules).expect("rules serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_set_has_the_requested_rules_and_the_probe_rule_first() {
        let rules: Vec<Value> = serde_json::from_str(&import_set(1000)).unwrap();
        assert_eq!(rules.len(), 1000);
        assert_eq!(
            rules[0]["ingress"][0]["fromEndpoints"][0]["matchLabels"]["app"],
            "bench-client"
        );
        assert_eq!(rules[999]["labels"][0], IMPORT_LABEL);
    }

    #[test]
    fn steady_state_gives_fillers_the_requested_ports() {
        let rules: Vec<Value> = serde_json::from_str(&steady_state(10)).unwrap();
        assert_eq!(
            rules[1]["ingress"][0]["toPorts"][0]["ports"]
                .as_array()
                .unwrap()
                .len(),
            10
        );
    }
}
