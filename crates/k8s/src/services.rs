//! Kubernetes Services and their EndpointSlices as load-balancer entries:
//! one per frontend (cluster IP, NodePort on a node's address, external IP,
//! load-balancer IP) and port, over the endpoints that are ready. A
//! dual-stack Service (`clusterIPs` of both families) has a frontend per
//! family, each balanced over the EndpointSlices of its `addressType`.
//! Pure: the agent writes the result into the datapath.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label EndpointSlices carry naming their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One frontend of a Service and where it balances to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LbEntry {
    pub frontend: IpAddr,
    pub port: u16,
    /// `TCP` or `UDP`.
    pub protocol: String,
    /// `ClusterIP`, `NodePort`, `ExternalIPs` or `LoadBalancer`.
    pub kind: String,
    /// Ready backends of the frontend's family, sorted.
    pub backends: Vec<(IpAddr, u16)>,
}

/// The node balancing: its name (for the traffic policies that keep to
/// local endpoints) and the addresses NodePorts are served on, every
/// node's (IPv4, and IPv6 where a node has one), so a pod dialling any
/// node's NodePort is balanced right away.
#[derive(Debug, Clone, Copy)]
pub struct Balancing<'a> {
    pub node_name: &'a str,
    pub node_addresses: &'a BTreeSet<IpAddr>,
}

/// A ready endpoint: address, port, and the node it runs on.
type Endpoint = (IpAddr, u16, Option<String>);

/// The entries of `service`, balanced over the ready endpoints of its
/// `slices` of the frontend's family. Headless and ExternalName services
/// and SCTP ports have none; NodePorts are served on the nodes' addresses,
/// each balanced over the backends of its family (Cilium's NodePort over
/// IPv6 on a node's IPv6 address). `internalTrafficPolicy: Local` keeps cluster IPs, and
/// `externalTrafficPolicy: Local` the other frontends, to endpoints on this
/// node.
pub fn lb_entries(service: &Service, slices: &[&EndpointSlice], node: Balancing) -> Vec<LbEntry> {
    let Some(spec) = &service.spec else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let cluster_ips = addresses(spec.cluster_ips.iter().flatten().chain(&spec.cluster_ip));
    let external_ips = addresses(spec.external_ips.iter().flatten());
    let load_balancer_ips = addresses(
        service
            .status
            .iter()
            .filter_map(|s| s.load_balancer.as_ref())
            .flat_map(|lb| lb.ingress.iter().flatten())
            .filter_map(|ingress| ingress.ip.as_ref()),
    );
    let has_node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    let local_only = |policy: &Option<String>| policy.as_deref() == Some("Local");
    let mut entries = Vec::new();
    for port in spec.ports.iter().flatten() {
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        if protocol != "TCP" && protocol != "UDP" {
            continue;
        }
        let Ok(number) = u16::try_from(port.port) else {
            continue;
        };
        let ready = ready_endpoints(slices, port.name.as_deref(), &protocol);
        let internal = backends(&ready, local_only(&spec.internal_traffic_policy), node);
        let external = backends(&ready, local_only(&spec.external_traffic_policy), node);
        let mut add = |frontends: &BTreeSet<IpAddr>, port: u16, kind: &str, backends: &Vec<_>| {
            for ip in frontends {
                entries.push(LbEntry {
                    frontend: *ip,
                    port,
                    protocol: protocol.clone(),
                    kind: kind.into(),
                    backends: of_family(backends, *ip),
                });
            }
        };
        add(&cluster_ips, number, "ClusterIP", &internal);
        add(&external_ips, number, "ExternalIPs", &external);
        if spec.type_.as_deref() == Some("LoadBalancer") {
            add(&load_balancer_ips, number, "LoadBalancer", &external);
        }
        if let Some(node_port) = has_node_ports.then(|| node_port(port)).flatten() {
            add(node.node_addresses, node_port, "NodePort", &external);
        }
    }
    entries
}

fn addresses<'a>(texts: impl Iterator<Item = &'a String>) -> BTreeSet<IpAddr> {
    texts.filter_map(|ip| ip.parse().ok()).collect()
}

/// The backends of `frontend`'s family: a frontend is never balanced over
/// the other family (that would be NAT46/64).
fn of_family(backends: &[(IpAddr, u16)], frontend: IpAddr) -> Vec<(IpAddr, u16)> {
    backends
        .iter()
        .filter(|(ip, _)| ip.is_ipv4() == frontend.is_ipv4())
        .copied()
        .collect()
}

fn node_port(port: &ServicePort) -> Option<u16> {
    port.node_port
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}

/// The backends among `ready`: all of them, or with `local_only` those on
/// this node.
fn backends(ready: &[Endpoint], local_only: bool, node: Balancing) -> Vec<(IpAddr, u16)> {
    ready
        .iter()
        .filter(|(_, _, on)| !local_only || on.as_deref() == Some(node.node_name))
        .map(|(ip, port, _)| (*ip, *port))
        .collect()
}

/// The ready endpoints (slices of addressType IPv4 and IPv6) for the
/// service port named `port_name`, sorted. An address that is not of its
/// slice's type is ignored.
fn ready_endpoints(
    slices: &[&EndpointSlice],
    port_name: Option<&str>,
    protocol: &str,
) -> Vec<Endpoint> {
    let mut ready = BTreeSet::new();
    for slice in slices
        .iter()
        .filter(|s| s.address_type == "IPv4" || s.address_type == "IPv6")
    {
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
            let is_ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !is_ready {
                continue;
            }
            for address in &endpoint.addresses {
                let Ok(ip) = address.parse::<IpAddr>() else {
                    continue;
                };
                if ip.is_ipv4() == (slice.address_type == "IPv4") {
                    ready.insert((ip, number, endpoint.node_name.clone()));
                }
            }
        }
    }
    ready.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        std::net::Ipv4Addr::new(a, b, c, d).into()
    }

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

    fn nodes() -> BTreeSet<IpAddr> {
        [v4(192, 0, 2, 10), v4(192, 0, 2, 11)].into()
    }

    fn node(addresses: &BTreeSet<IpAddr>) -> Balancing<'_> {
        Balancing {
            node_name: "node0",
            node_addresses: addresses,
        }
    }

    fn exposed(kind: &str, extra: serde_json::Value) -> Service {
        let mut svc = serde_json::to_value(service()).unwrap();
        svc["spec"]["type"] = kind.into();
        svc["spec"]["ports"][0]["nodePort"] = 30080.into();
        for (k, v) in extra.as_object().unwrap() {
            svc[k.as_str()] = v.clone();
        }
        serde_json::from_value(svc).unwrap()
    }

    fn two_nodes_slice() -> EndpointSlice {
        slice(serde_json::json!([
            {"addresses": ["10.0.1.5"], "nodeName": "node0"},
            {"addresses": ["10.0.2.7"], "nodeName": "node1"},
        ]))
    }

    fn kinds(entries: &[LbEntry]) -> Vec<(String, IpAddr, u16, usize)> {
        let mut kinds: Vec<_> = entries
            .iter()
            .filter(|e| e.protocol == "TCP")
            .map(|e| (e.kind.clone(), e.frontend, e.port, e.backends.len()))
            .collect();
        kinds.sort();
        kinds
    }

    #[test]
    fn a_node_port_is_served_on_every_nodes_address_besides_the_cluster_ip() {
        let addresses = nodes();
        let entries = lb_entries(
            &exposed("NodePort", serde_json::json!({})),
            &[&two_nodes_slice()],
            node(&addresses),
        );
        let vip = v4(10, 96, 0, 10);
        assert_eq!(
            kinds(&entries),
            vec![
                ("ClusterIP".into(), vip, 80, 2),
                ("NodePort".into(), v4(192, 0, 2, 10), 30080, 2),
                ("NodePort".into(), v4(192, 0, 2, 11), 30080, 2),
            ]
        );
        let mut udp = entries.iter().filter(|e| e.protocol == "UDP");
        assert!(
            udp.all(|e| e.kind == "ClusterIP"),
            "no nodePort on the UDP port"
        );
    }

    #[test]
    fn external_traffic_policy_local_keeps_external_frontends_to_this_nodes_endpoints() {
        let addresses = nodes();
        let mut svc = exposed(
            "LoadBalancer",
            serde_json::json!({
                "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}},
            }),
        );
        let spec = svc.spec.as_mut().unwrap();
        spec.external_traffic_policy = Some("Local".into());
        spec.external_ips = Some(vec!["198.51.100.20".into()]);
        let entries = lb_entries(&svc, &[&two_nodes_slice()], node(&addresses));
        assert_eq!(
            kinds(&entries),
            vec![
                ("ClusterIP".into(), v4(10, 96, 0, 10), 80, 2),
                ("ExternalIPs".into(), v4(198, 51, 100, 20), 80, 1),
                ("LoadBalancer".into(), v4(203, 0, 113, 9), 80, 1),
                ("NodePort".into(), v4(192, 0, 2, 10), 30080, 1),
                ("NodePort".into(), v4(192, 0, 2, 11), 30080, 1),
            ]
        );
        let local = entries.iter().find(|e| e.kind == "NodePort").unwrap();
        assert_eq!(local.backends, vec![(v4(10, 0, 1, 5), 8080)]);
    }

    #[test]
    fn only_ready_endpoints_of_the_named_port_are_backends() {
        let slice = slice(serde_json::json!([
            {"addresses": ["10.0.1.5"], "conditions": {"ready": true}},
            {"addresses": ["10.0.2.7"], "conditions": {"ready": false}},
            {"addresses": ["10.0.2.9"]},
        ]));
        let entries = lb_entries(&service(), &[&slice], node(&nodes()));
        assert_eq!(entries.len(), 2);
        let http = entries.iter().find(|e| e.port == 80).unwrap();
        assert_eq!(http.frontend, v4(10, 96, 0, 10));
        assert_eq!(
            http.backends,
            vec![(v4(10, 0, 1, 5), 8080), (v4(10, 0, 2, 9), 8080)]
        );
        let dns = entries.iter().find(|e| e.port == 53).unwrap();
        assert!(dns.backends.is_empty(), "no slice port named dns");
    }

    #[test]
    fn headless_services_are_not_balanced() {
        let mut headless = service();
        headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        headless.spec.as_mut().unwrap().cluster_ips = Some(vec!["None".into()]);
        assert!(lb_entries(&headless, &[], node(&nodes())).is_empty());
    }

    #[test]
    fn a_dual_stack_service_has_a_frontend_per_family_over_that_familys_slices() {
        let mut svc = serde_json::to_value(service()).unwrap();
        svc["spec"]["clusterIPs"] = serde_json::json!(["10.96.0.10", "fd00:96::a"]);
        svc["spec"]["ipFamilies"] = serde_json::json!(["IPv4", "IPv6"]);
        svc["spec"]["ipFamilyPolicy"] = "RequireDualStack".into();
        let svc: Service = serde_json::from_value(svc).unwrap();
        let v4_slice = slice(serde_json::json!([{"addresses": ["10.0.1.5"]}]));
        let mut v6_slice = slice(serde_json::json!([
            {"addresses": ["fd00::5"]},
            {"addresses": ["fd00::6"], "conditions": {"ready": true}},
            {"addresses": ["10.0.1.9"]},
        ]));
        v6_slice.address_type = "IPv6".into();
        let entries = lb_entries(&svc, &[&v4_slice, &v6_slice], node(&nodes()));
        let http: Vec<_> = entries.iter().filter(|e| e.port == 80).collect();
        assert_eq!(http.len(), 2, "{http:?}");
        assert_eq!(http[0].frontend, v4(10, 96, 0, 10));
        assert_eq!(http[0].backends, vec![(v4(10, 0, 1, 5), 8080)]);
        let v6: IpAddr = "fd00:96::a".parse().unwrap();
        assert_eq!(http[1].frontend, v6);
        assert_eq!(
            http[1].backends,
            vec![
                ("fd00::5".parse().unwrap(), 8080),
                ("fd00::6".parse().unwrap(), 8080)
            ],
            "the IPv6 slice's IPv6 endpoints, not its stray IPv4 address"
        );
    }

    #[test]
    fn a_dual_stack_node_port_is_served_on_the_nodes_ipv6_addresses_over_ipv6_backends() {
        let mut svc = serde_json::to_value(exposed("NodePort", serde_json::json!({}))).unwrap();
        svc["spec"]["clusterIPs"] = serde_json::json!(["10.96.0.10", "fd00:96::a"]);
        svc["spec"]["externalIPs"] = serde_json::json!(["2001:db8:e::1"]);
        let svc: Service = serde_json::from_value(svc).unwrap();
        let mut v6_slice = slice(serde_json::json!([{"addresses": ["fd00::5"]}]));
        v6_slice.address_type = "IPv6".into();
        let v4_slice = slice(serde_json::json!([{"addresses": ["10.0.1.5"]}]));
        let node6: IpAddr = "fd00:c0a8::10".parse().unwrap();
        let addresses: BTreeSet<IpAddr> = [v4(192, 0, 2, 10), node6].into();
        let entries = lb_entries(&svc, &[&v4_slice, &v6_slice], node(&addresses));
        let backends_of = |frontend: IpAddr| {
            entries
                .iter()
                .find(|e| e.frontend == frontend && e.protocol == "TCP")
                .map(|e| (e.kind.as_str(), e.port, e.backends.clone()))
        };
        let v6_backend = vec![("fd00::5".parse().unwrap(), 8080)];
        assert_eq!(
            backends_of(node6),
            Some(("NodePort", 30080, v6_backend.clone()))
        );
        assert_eq!(
            backends_of("2001:db8:e::1".parse().unwrap()),
            Some(("ExternalIPs", 80, v6_backend))
        );
        assert_eq!(
            backends_of(v4(192, 0, 2, 10)),
            Some(("NodePort", 30080, vec![(v4(10, 0, 1, 5), 8080)]))
        );
    }

    #[test]
    fn an_ipv6_only_service_gets_no_ipv4_backends() {
        let mut svc = serde_json::to_value(service()).unwrap();
        svc["spec"]["clusterIP"] = "fd00:96::b".into();
        svc["spec"]["clusterIPs"] = serde_json::json!(["fd00:96::b"]);
        let svc: Service = serde_json::from_value(svc).unwrap();
        let v4_slice = slice(serde_json::json!([{"addresses": ["10.0.1.5"]}]));
        let entries = lb_entries(&svc, &[&v4_slice], node(&nodes()));
        let http = entries.iter().find(|e| e.port == 80).unwrap();
        assert!(http.backends.is_empty(), "{http:?}");
    }
}
