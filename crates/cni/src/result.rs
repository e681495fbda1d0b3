//! The ADD result: interfaces, IPs, routes, in the shape of the version the
//! runtime asked for (0.3.x/0.4.0 tag each IP with its `"version"`, 1.x
//! does not). A dual-stack endpoint lists its IPv4 address, then its IPv6
//! one, with a default route for each family.

use serde::Serialize;

use crate::version;

/// What ADD made, in plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOutcome {
    pub host_ifname: String,
    pub host_mac: String,
    pub container_ifname: String,
    pub container_mac: String,
    pub netns: String,
    /// The IPv4 address and gateway, when the agent has IPv4 enabled.
    pub v4: Option<crate::plumbing::veth::Ipv4Config>,
    /// The IPv6 address and gateway, when the agent has IPv6 enabled.
    pub v6: Option<crate::plumbing::veth::Ipv6Config>,
}

#[derive(Serialize, Debug, PartialEq)]
struct Wire<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    interfaces: Vec<Interface<'a>>,
    ips: Vec<IpConfig>,
    routes: Vec<Route>,
    dns: Dns,
}

#[derive(Serialize, Debug, PartialEq)]
struct Interface<'a> {
    name: &'a str,
    mac: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sandbox: Option<&'a str>,
}

#[derive(Serialize, Debug, PartialEq)]
struct IpConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    address: String,
    gateway: String,
    /// Index into `interfaces`.
    interface: usize,
}

#[derive(Serialize, Debug, PartialEq)]
struct Route {
    dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gw: Option<String>,
}

#[derive(Serialize, Debug, PartialEq, Default)]
struct Dns {}

/// Index of the container interface in the result's `interfaces`.
const CONTAINER_INTERFACE: usize = 1;

impl AddOutcome {
    /// The result JSON for `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> String {
        let tagged = !version::at_least(cni_version, 1, 0);
        let wire = Wire {
            cni_version,
            interfaces: vec![
                Interface {
                    name: &self.host_ifname,
                    mac: &self.host_mac,
                    sandbox: None,
                },
                Interface {
                    name: &self.container_ifname,
                    mac: &self.container_mac,
                    sandbox: Some(&self.netns),
                },
            ],
            ips: (self.v4.map(|v4| IpConfig {
                version: tagged.then_some("4"),
                address: format!("{}/32", v4.addr),
                gateway: v4.gateway.to_string(),
                interface: CONTAINER_INTERFACE,
            }))
            .into_iter()
            .chain(self.v6.map(|v6| IpConfig {
                version: tagged.then_some("6"),
                address: format!("{}/128", v6.addr),
                gateway: v6.gateway.to_string(),
                interface: CONTAINER_INTERFACE,
            }))
            .collect(),
            routes: (self.v4.map(|v4| Route {
                dst: "0.0.0.0/0".to_string(),
                gw: Some(v4.gateway.to_string()),
            }))
            .into_iter()
            .chain(self.v6.map(|v6| Route {
                dst: "::/0".to_string(),
                gw: Some(v6.gateway.to_string()),
            }))
            .collect(),
            dns: Dns::default(),
        };
        serde_json::to_string(&wire).expect("plain values always serialize")
    }
}

/// The addresses (without prefix) a previous result lists, for CHECK.
pub fn prev_result_ips(prev: &serde_json::Value) -> Vec<std::net::IpAddr> {
    prev.get("ips")
        .and_then(|ips| ips.as_array())
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("address")?.as_str())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::net::Ipv4Addr;

    fn outcome() -> AddOutcome {
        AddOutcome {
            host_ifname: "lxc0123456789ab".into(),
            host_mac: "aa:bb:cc:dd:ee:01".into(),
            container_ifname: "eth0".into(),
            container_mac: "aa:bb:cc:dd:ee:02".into(),
            netns: "/run/netns/x".into(),
            v4: Some(crate::plumbing::veth::Ipv4Config {
                addr: Ipv4Addr::new(10, 200, 0, 7),
                gateway: Ipv4Addr::new(10, 200, 0, 1),
            }),
            v6: None,
        }
    }

    fn dual_stack() -> AddOutcome {
        AddOutcome {
            v6: Some(crate::plumbing::veth::Ipv6Config {
                addr: "f00d::a00:f:0:7".parse().unwrap(),
                gateway: "f00d::a00:f:0:1".parse().unwrap(),
            }),
            ..outcome()
        }
    }

    #[test]
    fn dual_stack_result_lists_both_families_with_their_routes() {
        let v: Value = serde_json::from_str(&dual_stack().to_json("1.0.0")).unwrap();
        assert_eq!(
            v["ips"],
            json!([
                {"address": "10.200.0.7/32", "gateway": "10.200.0.1", "interface": 1},
                {"address": "f00d::a00:f:0:7/128", "gateway": "f00d::a00:f:0:1", "interface": 1}
            ])
        );
        assert_eq!(
            v["routes"],
            json!([
                {"dst": "0.0.0.0/0", "gw": "10.200.0.1"},
                {"dst": "::/0", "gw": "f00d::a00:f:0:1"}
            ])
        );
        let old: Value = serde_json::from_str(&dual_stack().to_json("0.4.0")).unwrap();
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(old["ips"][1]["version"], "6");
    }

    #[test]
    fn ipv6_only_result_lists_ipv6_and_its_default_route_alone() {
        let ipv6_only = AddOutcome {
            v4: None,
            ..dual_stack()
        };
        let v: Value = serde_json::from_str(&ipv6_only.to_json("1.0.0")).unwrap();
        assert_eq!(
            v["ips"],
            json!([{"address": "f00d::a00:f:0:7/128", "gateway": "f00d::a00:f:0:1", "interface": 1}])
        );
        assert_eq!(
            v["routes"],
            json!([{"dst": "::/0", "gw": "f00d::a00:f:0:1"}])
        );
    }

    #[test]
    fn result_1_0_matches_the_spec_shape() {
        let v: Value = serde_json::from_str(&outcome().to_json("1.0.0")).unwrap();
        assert_eq!(
            v,
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": "lxc0123456789ab", "mac": "aa:bb:cc:dd:ee:01"},
                    {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/run/netns/x"}
                ],
                "ips": [{"address": "10.200.0.7/32", "gateway": "10.200.0.1", "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.200.0.1"}],
                "dns": {}
            })
        );
    }

    #[test]
    fn older_versions_tag_ips_with_their_family() {
        let v: Value = serde_json::from_str(&outcome().to_json("0.4.0")).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["ips"][0]["version"], "4");
    }

    #[test]
    fn prev_result_ips_are_read_leniently() {
        let prev = json!({"ips": [{"address": "10.0.0.5/32"}, {"address": "fd00::1/128"}, {}]});
        let listed: Vec<std::net::IpAddr> = vec![
            Ipv4Addr::new(10, 0, 0, 5).into(),
            "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().into(),
        ];
        assert_eq!(prev_result_ips(&prev), listed);
        assert!(prev_result_ips(&json!({})).is_empty());
    }
}
