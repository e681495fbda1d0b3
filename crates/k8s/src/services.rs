//! Kubernetes Services and their EndpointSlices as load-balancer entries:
//! one per (cluster IP, port), over the endpoints that are ready. Pure: the
//! agent writes the result into the datapath.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label EndpointSlices carry naming their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One frontend of a Service and where it balances to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LbEntry {
    pub frontend: Ipv4Addr,
    pub port: u16,
    /// `TCP` or `UDP`.
    pub protocol: String,
    /// `ClusterIP` (the only kind balanced here so far).
    pub kind: String,
    /// Ready backends, sorted.
    pub backends: Vec<(Ipv4Addr, u16)>,
}

/// The entries of `service`, balanced over the ready endpoints of its
/// `slices`. Headless and ExternalName services, IPv6 addresses and SCTP
/// ports have none.
pub fn lb_entries(service: &Service, slices: &[&EndpointSlice]) -> Vec<LbEntry> {
    let Some(spec) = &service.spec else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let cluster_ips: BTreeSet<Ipv4Addr> = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .filter_map(|ip| ip.parse().ok())
        .collect();
    let mut entries = Vec::new();
    for port in spec.ports.iter().flatten() {
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        if protocol != "TCP" && protocol != "UDP" {
            continue;
        }
        let Ok(number) = u16::try_from(port.port) else {
            continue;
        };
        let backends = ready_backends(slices, port.name.as_deref(), &protocol);
        for ip in &cluster_ips {
            entries.push(LbEntry {
                frontend: *ip,
                port: number,
                protocol: protocol.clone(),
                kind: "ClusterIP".into(),
                backends: backends.clone(),
            });
        }
    }
    entries
}

/// The ready IPv4 endpoints for the service port named `port_name`.
fn ready_backends(
    slices: &[&EndpointSlice],
    port_name: Option<&str>,
    protocol: &str,
) -> Vec<(Ipv4Addr, u16)> {
    let mut backends = BTreeSet::new();
    for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
        let port = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name.unwrap_or("")
                && p.protocol.as_deref().unwrap_or("TCP") == protocol
        });
        let Some(number) = port
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for endpoint in slice.endpoints.iter().flatten() {
            // Kubernetes: an unknown readiness counts as ready.
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse() {
                    backends.insert((ip, number));
                }
            }
        }
    }
    backends.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                               {"name": "dns", "port": 53, "protocol": "UDP"}]},
        }))
        .unwrap()
    }

    fn slice(endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop",
                         "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
        .unwrap()
    }

    #[test]
    fn only_ready_endpoints_of_the_named_port_are_backends() {
        let slice = slice(serde_json::json!([
            {"addresses": ["10.0.1.5"], "conditions": {"ready": true}},
            {"addresses": ["10.0.2.7"], "conditions": {"ready": false}},
            {"addresses": ["10.0.2.9"]},
        ]));
        let entries = lb_entries(&service(), &[&slice]);
        assert_eq!(entries.len(), 2);
        let http = entries.iter().find(|e| e.port == 80).unwrap();
        assert_eq!(http.frontend, Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(
            http.backends,
            vec![
                (Ipv4Addr::new(10, 0, 1, 5), 8080),
                (Ipv4Addr::new(10, 0, 2, 9), 8080)
            ]
        );
        let dns = entries.iter().find(|e| e.port == 53).unwrap();
        assert!(dns.backends.is_empty(), "no slice port named dns");
    }

    #[test]
    fn headless_services_are_not_balanced() {
        let mut headless = service();
        headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        headless.spec.as_mut().unwrap().cluster_ips = Some(vec!["None".into()]);
        assert!(lb_entries(&headless, &[]).is_empty());
    }
}
