//! The agent's record of an endpoint and its API representation.

use std::net::{Ipv4Addr, Ipv6Addr};

use policy::Labels;
use serde::{Deserialize, Serialize};

/// What the agent keeps (and persists) about one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub id: u16,
    pub container_id: String,
    pub container_name: String,
    pub pod_name: String,
    pub interface_name: String,
    pub interface_index: u32,
    pub mac: [u8; 6],
    pub host_mac: [u8; 6],
    /// The endpoint's IPv4 address; absent for IPv6-only endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Addr>,
    /// The endpoint's IPv6 address (dual stack); absent in records of
    /// agents before IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    pub netns: String,
    pub labels: Labels,
    pub identity: u32,
    pub policy_revision: u64,
    pub ingress_enforced: bool,
    pub egress_enforced: bool,
    /// Container ports by name, for port names in ingress rules.
    #[serde(default)]
    pub named_ports: policy::ports::NamedPorts,
}

impl EndpointRecord {
    /// The endpoint's addresses, IPv4 first.
    pub fn addresses(&self) -> impl Iterator<Item = std::net::IpAddr> {
        let v4 = self.ipv4.map(std::net::IpAddr::from);
        v4.into_iter().chain(self.ipv6.map(Into::into))
    }

    pub fn policy_enabled(&self) -> &'static str {
        match (self.ingress_enforced, self.egress_enforced) {
            (true, true) => api::models::policy_enabled::BOTH,
            (true, false) => api::models::policy_enabled::INGRESS,
            (false, true) => api::models::policy_enabled::EGRESS,
            (false, false) => api::models::policy_enabled::NONE,
        }
    }

    pub fn to_model(&self, identity_labels: &Labels) -> api::models::Endpoint {
        use api::models::*;
        let labels = self.labels.to_strings();
        Endpoint {
            id: self.id,
            spec: EndpointConfigurationSpec {
                label_configuration: LabelConfigurationSpec {
                    user: labels.clone(),
                },
            },
            status: EndpointStatus {
                state: "ready".into(),
                identity: Identity {
                    id: self.identity,
                    labels: identity_labels.to_strings(),
                    labels_sha256: identity::labels_sha256(identity_labels),
                },
                networking: EndpointNetworking {
                    addressing: vec![AddressPair {
                        ipv4: self.ipv4.map(|ip| ip.to_string()),
                        ipv6: self.ipv6.map(|ip| ip.to_string()),
                    }],
                    interface_name: self.interface_name.clone(),
                    interface_index: self.interface_index as i64,
                    mac: format_mac(&self.mac),
                    host_mac: format_mac(&self.host_mac),
                    netns: self.netns.clone(),
                },
                external_identifiers: EndpointIdentifiers {
                    container_id: self.container_id.clone(),
                    container_name: self.container_name.clone(),
                    pod_name: self.pod_name.clone(),
                },
                labels: LabelConfigurationStatus {
                    realized: LabelConfigurationSpec {
                        user: labels.clone(),
                    },
                    security_relevant: labels,
                },
                policy: EndpointPolicyStatus {
                    realized: EndpointPolicy {
                        policy_enabled: self.policy_enabled().into(),
                        policy_revision: self.policy_revision,
                    },
                },
                named_ports: self
                    .named_ports
                    .iter()
                    .map(|(name, &(protocol, port))| Port {
                        name: name.clone(),
                        port,
                        protocol: named_port_protocol(protocol).into(),
                    })
                    .collect(),
            },
        }
    }
}

fn named_port_protocol(number: u8) -> &'static str {
    match number {
        policy::mapstate::PROTO_UDP => "UDP",
        policy::mapstate::PROTO_SCTP => "SCTP",
        _ => "TCP",
    }
}

/// Named ports as the API and Kubernetes write them (protocol `TCP` when
/// empty); the error names the entry at fault.
pub fn parse_named_ports(ports: &[api::models::Port]) -> Result<policy::ports::NamedPorts, String> {
    let mut out = policy::ports::NamedPorts::new();
    for (index, port) in ports.iter().enumerate() {
        let at = format!("named-ports[{index}]");
        if !policy::ports::is_port_name(&port.name) {
            return Err(format!(
                "{at}.name: {:?} is not a port name (at most 15 lowercase letters, digits and inner dashes, at least one letter)",
                port.name
            ));
        }
        if port.port == 0 {
            return Err(format!("{at}.port: must be 1-65535"));
        }
        let protocol = match port.protocol.to_ascii_uppercase().as_str() {
            "" | "TCP" => policy::mapstate::PROTO_TCP,
            "UDP" => policy::mapstate::PROTO_UDP,
            "SCTP" => policy::mapstate::PROTO_SCTP,
            other => {
                return Err(format!(
                    "{at}.protocol: {other:?} (expected TCP, UDP or SCTP)"
                ))
            }
        };
        if out
            .insert(port.name.clone(), (protocol, port.port))
            .is_some()
        {
            return Err(format!("{at}.name: {:?} is named twice", port.name));
        }
    }
    Ok(out)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (slot, part) in mac.iter_mut().zip(parts) {
        *slot = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_ports_read_as_kubernetes_writes_them() {
        let port = |name: &str, port: u16, protocol: &str| api::models::Port {
            name: name.into(),
            port,
            protocol: protocol.into(),
        };
        let named = parse_named_ports(&[port("http", 8080, ""), port("dns", 53, "udp")]).unwrap();
        assert_eq!(named["http"], (policy::mapstate::PROTO_TCP, 8080));
        assert_eq!(named["dns"], (policy::mapstate::PROTO_UDP, 53));
        for (bad, field) in [
            (port("Http", 80, ""), "named-ports[0].name"),
            (port("http", 0, ""), "named-ports[0].port"),
            (port("http", 80, "ICMP"), "named-ports[0].protocol"),
        ] {
            let err = parse_named_ports(&[bad]).unwrap_err();
            assert!(err.starts_with(field), "{err}");
        }
        let twice = parse_named_ports(&[port("a", 1, ""), port("a", 2, "")]).unwrap_err();
        assert!(twice.starts_with("named-ports[1].name"), "{twice}");
    }

    #[test]
    fn mac_round_trip_and_rejects() {
        let mac = parse_mac("0a:1B:02:ff:00:09").unwrap();
        assert_eq!(format_mac(&mac), "0a:1b:02:ff:00:09");
        for bad in ["", "0a:1b", "0a:1b:02:ff:00:zz", "0a:1b:02:ff:00:09:01"] {
            assert!(parse_mac(bad).is_none(), "{bad}");
        }
    }
}
