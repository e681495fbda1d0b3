//! The agent's record of an endpoint and its API representation.

use std::net::Ipv4Addr;

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
    pub ipv4: Ipv4Addr,
    pub netns: String,
    pub labels: Labels,
    pub identity: u32,
    pub policy_revision: u64,
    pub ingress_enforced: bool,
    pub egress_enforced: bool,
}

impl EndpointRecord {
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
                        ipv4: Some(self.ipv4.to_string()),
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
            },
        }
    }
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
    fn mac_round_trip_and_rejects() {
        let mac = parse_mac("0a:1B:02:ff:00:09").unwrap();
        assert_eq!(format_mac(&mac), "0a:1b:02:ff:00:09");
        for bad in ["", "0a:1b", "0a:1b:02:ff:00:zz", "0a:1b:02:ff:00:09:01"] {
            assert!(parse_mac(bad).is_none(), "{bad}");
        }
    }
}
