//! The Cilium objects that carry cluster state through the API server in
//! CRD mode, built and read here: CiliumIdentity (a number and the labels
//! it stands for), CiliumEndpoint (a pod's address, identity and node) and
//! CiliumNode (a node's addresses and pod CIDRs). Both address families,
//! as a dual-stack Cilium writes them. Pure: no IO.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ObjectMeta};
use policy::{Label, Labels};
use serde_json::{json, Value};

use crate::policies::{CILIUM_GROUP, CILIUM_VERSION};

fn resource(kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk(CILIUM_GROUP, CILIUM_VERSION, kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

pub fn identity_resource() -> ApiResource {
    resource("CiliumIdentity", "ciliumidentities")
}

pub fn endpoint_resource() -> ApiResource {
    resource("CiliumEndpoint", "ciliumendpoints")
}

pub fn node_resource() -> ApiResource {
    resource("CiliumNode", "ciliumnodes")
}

fn object(resource: &ApiResource, metadata: ObjectMeta, data: Value) -> DynamicObject {
    let mut object = DynamicObject::new("", resource).data(data);
    object.metadata = metadata;
    object
}

/// A CiliumIdentity: named by its number, `security-labels` maps
/// `source:key` to the value.
pub fn identity_object(id: u32, labels: &Labels) -> DynamicObject {
    let security: BTreeMap<String, String> = labels
        .iter()
        .map(|l| (format!("{}:{}", l.source, l.key), l.value.clone()))
        .collect();
    object(
        &identity_resource(),
        ObjectMeta {
            name: Some(id.to_string()),
            ..Default::default()
        },
        json!({ "security-labels": security }),
    )
}

/// The number and labels of a CiliumIdentity; `None` for one that is not
/// an identity this agent can use.
pub fn parse_identity(object: &DynamicObject) -> Option<(u32, Labels)> {
    let id: u32 = object.metadata.name.as_deref()?.parse().ok()?;
    let labels = object.data.get("security-labels")?.as_object()?;
    let labels: Labels = labels
        .iter()
        .map(|(source_key, value)| {
            let (source, key) = source_key.split_once(':').unwrap_or(("unspec", source_key));
            Label::new(source, key, value.as_str().unwrap_or_default())
        })
        .collect();
    (!labels.is_empty()).then_some((id, labels))
}

/// What a CiliumEndpoint says about a pod's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView {
    pub endpoint_id: u16,
    pub identity: u32,
    pub labels: Vec<String>,
    /// The pod's addresses; at least one is set.
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// The node's address: where to tunnel to.
    pub node_ip: Ipv4Addr,
    /// `(name, port, protocol)`.
    pub named_ports: Vec<(String, u16, String)>,
}

/// The CiliumEndpoint of pod `namespace/name`, owned by the Pod (`uid`) so
/// that it goes when the pod does.
pub fn endpoint_object(
    namespace: &str,
    name: &str,
    pod_uid: Option<&str>,
    view: &EndpointView,
) -> DynamicObject {
    let owner = pod_uid.map(|uid| {
        vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: name.into(),
                uid: uid.into(),
                ..Default::default()
            },
        ]
    });
    let named_ports: Vec<Value> = view
        .named_ports
        .iter()
        .map(|(name, port, protocol)| json!({"name": name, "port": port, "protocol": protocol}))
        .collect();
    // One address pair, as Cilium's AddressPair: a family the pod lacks
    // is left out.
    let mut pair = serde_json::Map::new();
    if let Some(ip) = view.ipv4 {
        pair.insert("ipv4".into(), ip.to_string().into());
    }
    if let Some(ip) = view.ipv6 {
        pair.insert("ipv6".into(), ip.to_string().into());
    }
    object(
        &endpoint_resource(),
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            owner_references: owner,
            ..Default::default()
        },
        json!({"status": {
            "id": view.endpoint_id,
            "identity": {"id": view.identity, "labels": view.labels},
            "networking": {
                "addressing": [pair],
                "node": view.node_ip.to_string(),
            },
            "named-ports": named_ports,
            "state": "ready",
        }}),
    )
}

/// Where a CiliumEndpoint's pod is, as other nodes' ipcaches need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPlace {
    /// Every address of every pair, IPv4 and IPv6; never empty.
    pub ips: Vec<IpAddr>,
    pub identity: u32,
    pub node_ip: Ipv4Addr,
}

/// A CiliumEndpoint's addresses, identity and node; `None` if it lacks
/// one of them (an address that does not parse is left out).
pub fn parse_endpoint(object: &DynamicObject) -> Option<EndpointPlace> {
    let status = object.data.get("status")?;
    let identity = u32::try_from(status.pointer("/identity/id")?.as_u64()?).ok()?;
    let ips: Vec<IpAddr> = status
        .pointer("/networking/addressing")?
        .as_array()?
        .iter()
        .flat_map(|pair| {
            let v4 = pair.get("ipv4").and_then(Value::as_str);
            let v6 = pair.get("ipv6").and_then(Value::as_str);
            let v4 = v4
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                .map(IpAddr::V4);
            let v6 = v6
                .and_then(|ip| ip.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6);
            v4.into_iter().chain(v6)
        })
        .collect();
    let node_ip = status.pointer("/networking/node")?.as_str()?.parse().ok()?;
    (!ips.is_empty()).then_some(EndpointPlace {
        ips,
        identity,
        node_ip,
    })
}

/// The named ports a CiliumEndpoint lists: `(name, port, protocol)`.
pub fn endpoint_named_ports(object: &DynamicObject) -> Vec<(String, u16, String)> {
    object
        .data
        .pointer("/status/named-ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p.get("name")?.as_str()?.to_string(),
                u16::try_from(p.get("port")?.as_u64()?).ok()?,
                p.get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("TCP")
                    .to_string(),
            ))
        })
        .collect()
}

/// What a CiliumNode says about its node, and what this node writes in
/// its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    /// The IPv4 InternalIP address (the underlay, where tunnels go).
    pub ipv4: Ipv4Addr,
    /// The IPv6 InternalIP address, on a node that has one.
    pub ipv6: Option<Ipv6Addr>,
    /// The IPv4 pod CIDR, on a node with IPv4 pods.
    pub pod_cidr: Option<String>,
    /// The IPv6 pod CIDR, on a node with IPv6.
    pub ipv6_pod_cidr: Option<String>,
    /// The node's router addresses (`cilium_host`): its CiliumInternalIPs.
    pub router_ips: Vec<IpAddr>,
    /// The health endpoint's addresses.
    pub health_ipv4: Option<Ipv4Addr>,
    pub health_ipv6: Option<Ipv6Addr>,
}

/// This node's CiliumNode: InternalIPs then CiliumInternalIPs, pod CIDRs
/// IPv4 first, as a dual-stack Cilium with cluster-pool IPAM writes them.
pub fn node_object(node: &NodeView) -> DynamicObject {
    let internal = std::iter::once(IpAddr::V4(node.ipv4)).chain(node.ipv6.map(IpAddr::V6));
    let addresses: Vec<Value> = internal
        .map(|ip| ("InternalIP", ip))
        .chain(node.router_ips.iter().map(|ip| ("CiliumInternalIP", *ip)))
        .map(|(kind, ip)| json!({"type": kind, "ip": ip.to_string()}))
        .collect();
    let pod_cidrs: Vec<&str> = node
        .pod_cidr
        .as_deref()
        .into_iter()
        .chain(node.ipv6_pod_cidr.as_deref())
        .collect();
    let mut spec = json!({
        "addresses": addresses,
        "ipam": {"podCIDRs": pod_cidrs},
    });
    let mut health = serde_json::Map::new();
    if let Some(ip) = node.health_ipv4 {
        health.insert("ipv4".into(), ip.to_string().into());
    }
    if let Some(ip) = node.health_ipv6 {
        health.insert("ipv6".into(), ip.to_string().into());
    }
    if !health.is_empty() {
        spec["health"] = Value::Object(health);
    }
    object(
        &node_resource(),
        ObjectMeta {
            name: Some(node.name.clone()),
            ..Default::default()
        },
        json!({ "spec": spec }),
    )
}

/// A CiliumNode's node, if it names an IPv4 InternalIP (the underlay) and
/// a pod CIDR; its IPv6 InternalIP, pod CIDR of each family, router and
/// health addresses where it lists them.
pub fn parse_node(object: &DynamicObject) -> Option<NodeView> {
    let spec = object.data.get("spec")?;
    let addresses: Vec<(&str, IpAddr)> = spec
        .get("addresses")?
        .as_array()?
        .iter()
        .filter_map(|a| {
            let kind = a.get("type")?.as_str()?;
            Some((kind, a.get("ip")?.as_str()?.parse().ok()?))
        })
        .collect();
    let ipv4 = addresses.iter().find_map(|(kind, ip)| match ip {
        IpAddr::V4(ip) if *kind == "InternalIP" => Some(*ip),
        _ => None,
    })?;
    let ipv6 = addresses.iter().find_map(|(kind, ip)| match ip {
        IpAddr::V6(ip) if *kind == "InternalIP" => Some(*ip),
        _ => None,
    });
    let router_ips = addresses
        .iter()
        .filter(|(kind, _)| *kind == "CiliumInternalIP")
        .map(|(_, ip)| *ip)
        .collect();
    let pod_cidrs: Vec<&str> = spec
        .pointer("/ipam/podCIDRs")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let of_family = |v6: bool| {
        pod_cidrs
            .iter()
            .find(|cidr| {
                let ip = cidr.split('/').next().unwrap_or_default();
                ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6() == v6)
            })
            .map(|cidr| cidr.to_string())
    };
    let health = |family: &str| {
        spec.pointer(&format!("/health/{family}"))
            .and_then(Value::as_str)
            .and_then(|ip| ip.parse::<IpAddr>().ok())
    };
    let health_ipv4 = match health("ipv4") {
        Some(IpAddr::V4(ip)) => Some(ip),
        _ => None,
    };
    let health_ipv6 = match health("ipv6") {
        Some(IpAddr::V6(ip)) => Some(ip),
        _ => None,
    };
    let (pod_cidr, ipv6_pod_cidr) = (of_family(false), of_family(true));
    if pod_cidr.is_none() && ipv6_pod_cidr.is_none() {
        return None;
    }
    Some(NodeView {
        name: object.metadata.name.clone()?,
        ipv4,
        ipv6,
        pod_cidr,
        ipv6_pod_cidr,
        router_ips,
        health_ipv4,
        health_ipv6,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ipv4: Option<Ipv4Addr>, ipv6: Option<Ipv6Addr>) -> EndpointView {
        EndpointView {
            endpoint_id: 7,
            identity: 4242,
            labels: vec!["k8s:app=web".into()],
            ipv4,
            ipv6,
            node_ip: Ipv4Addr::new(192, 168, 0, 11),
            named_ports: vec![("http".into(), 8080, "TCP".into())],
        }
    }

    fn node() -> NodeView {
        NodeView {
            name: "node1".into(),
            ipv4: Ipv4Addr::new(192, 168, 0, 11),
            pod_cidr: Some("10.0.1.0/24".into()),
            ipv6_pod_cidr: Some("f00d::c0a8:b00:0/96".into()),
            router_ips: vec![
                "10.0.1.1".parse().unwrap(),
                "f00d::c0a8:b00:1".parse().unwrap(),
            ],
            health_ipv4: Some(Ipv4Addr::new(10, 0, 1, 9)),
            health_ipv6: Some("f00d::c0a8:b00:9".parse().unwrap()),
            ipv6: Some("fd00::11".parse().unwrap()),
        }
    }

    #[test]
    fn objects_read_back_as_written() {
        let labels =
            Labels::parse_all(&["k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"]).unwrap();
        let identity = identity_object(4242, &labels);
        assert_eq!(parse_identity(&identity), Some((4242, labels)));

        let view = view(Some(Ipv4Addr::new(10, 0, 1, 5)), None);
        let endpoint = endpoint_object("shop", "web-1", Some("uid-1"), &view);
        assert_eq!(
            parse_endpoint(&endpoint),
            Some(EndpointPlace {
                ips: vec!["10.0.1.5".parse().unwrap()],
                identity: 4242,
                node_ip: view.node_ip
            })
        );
        assert_eq!(endpoint_named_ports(&endpoint), view.named_ports);
        assert_eq!(endpoint.metadata.owner_references.unwrap()[0].uid, "uid-1");

        let node = node();
        assert_eq!(parse_node(&node_object(&node)), Some(node));
    }

    #[test]
    fn a_dual_stack_endpoint_is_one_address_pair() {
        let v6: Ipv6Addr = "f00d::a00:105".parse().unwrap();
        let endpoint = endpoint_object(
            "shop",
            "web-1",
            None,
            &view(Some(Ipv4Addr::new(10, 0, 1, 5)), Some(v6)),
        );
        assert_eq!(
            endpoint.data.pointer("/status/networking/addressing"),
            Some(&json!([{"ipv4": "10.0.1.5", "ipv6": "f00d::a00:105"}]))
        );
        let place = parse_endpoint(&endpoint).unwrap();
        assert_eq!(
            place.ips,
            ["10.0.1.5".parse::<IpAddr>().unwrap(), v6.into()]
        );

        // IPv6 only: the pair has no ipv4, and the endpoint still counts.
        let endpoint = endpoint_object("shop", "web-2", None, &view(None, Some(v6)));
        assert_eq!(
            endpoint.data.pointer("/status/networking/addressing"),
            Some(&json!([{"ipv6": "f00d::a00:105"}]))
        );
        assert_eq!(parse_endpoint(&endpoint).unwrap().ips, [IpAddr::from(v6)]);
    }

    #[test]
    fn endpoints_from_cilium_read_every_pair_and_skip_bad_addresses() {
        let endpoint: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "a", "namespace": "b"},
            "status": {
                "identity": {"id": 9},
                "networking": {
                    "node": "192.168.0.12",
                    "addressing": [{"ipv4": "10.0.2.4"}, {"ipv6": "fd00::4"}, {"ipv6": "nope"}],
                },
            },
        }))
        .unwrap();
        let place = parse_endpoint(&endpoint).unwrap();
        assert_eq!(
            place.ips,
            [
                "10.0.2.4".parse::<IpAddr>().unwrap(),
                "fd00::4".parse().unwrap()
            ]
        );
        let mut empty = endpoint.clone();
        empty.data["status"]["networking"]["addressing"] = json!([{}]);
        assert_eq!(parse_endpoint(&empty), None);
    }

    #[test]
    fn a_dual_stack_node_lists_both_cidrs_and_router_addresses() {
        let object = node_object(&node());
        assert_eq!(
            object.data.pointer("/spec/ipam/podCIDRs"),
            Some(&json!(["10.0.1.0/24", "f00d::c0a8:b00:0/96"]))
        );
        assert_eq!(
            object.data.pointer("/spec/addresses"),
            Some(&json!([
                {"type": "InternalIP", "ip": "192.168.0.11"},
                {"type": "InternalIP", "ip": "fd00::11"},
                {"type": "CiliumInternalIP", "ip": "10.0.1.1"},
                {"type": "CiliumInternalIP", "ip": "f00d::c0a8:b00:1"},
            ]))
        );
        assert_eq!(
            object.data.pointer("/spec/health"),
            Some(&json!({"ipv4": "10.0.1.9", "ipv6": "f00d::c0a8:b00:9"}))
        );
        // A node without IPv6 writes what it wrote before.
        let v4_only = NodeView {
            ipv6: None,
            ipv6_pod_cidr: None,
            router_ips: vec![],
            health_ipv6: None,
            ..node()
        };
        assert_eq!(
            node_object(&v4_only).data.pointer("/spec/health"),
            Some(&json!({"ipv4": "10.0.1.9"}))
        );
        assert_eq!(
            node_object(&v4_only).data.pointer("/spec/ipam/podCIDRs"),
            Some(&json!(["10.0.1.0/24"]))
        );
        assert_eq!(parse_node(&node_object(&v4_only)), Some(v4_only));
        let v6_only = NodeView {
            pod_cidr: None,
            ..node()
        };
        assert_eq!(
            node_object(&v6_only).data.pointer("/spec/ipam/podCIDRs"),
            Some(&json!(["f00d::c0a8:b00:0/96"]))
        );
        assert_eq!(parse_node(&node_object(&v6_only)), Some(v6_only));
        let none = NodeView {
            pod_cidr: None,
            ipv6_pod_cidr: None,
            ..node()
        };
        assert_eq!(parse_node(&node_object(&none)), None);
    }

    #[test]
    fn a_node_is_read_by_family_whatever_the_order() {
        let object: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {
                "addresses": [
                    {"type": "InternalIP", "ip": "fd00::11"},
                    {"type": "InternalIP", "ip": "192.168.0.11"},
                ],
                "ipam": {"podCIDRs": ["fd00:10:244:1::/64", "10.244.1.0/24"]},
            },
        }))
        .unwrap();
        let node = parse_node(&object).unwrap();
        assert_eq!(node.ipv4, Ipv4Addr::new(192, 168, 0, 11));
        assert_eq!(node.pod_cidr.as_deref(), Some("10.244.1.0/24"));
        assert_eq!(node.ipv6_pod_cidr.as_deref(), Some("fd00:10:244:1::/64"));
    }
}
