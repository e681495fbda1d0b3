//! The Cilium objects that carry cluster state through the API server in
//! CRD mode, built and read here: CiliumIdentity (a number and the labels
//! it stands for), CiliumEndpoint (a pod's address, identity and node) and
//! CiliumNode (a node's address and pod CIDR). Pure: no IO.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

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
    pub ipv4: Ipv4Addr,
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
                "addressing": [{"ipv4": view.ipv4.to_string()}],
                "node": view.node_ip.to_string(),
            },
            "named-ports": named_ports,
            "state": "ready",
        }}),
    )
}

/// `(pod address, identity, node address)` of a CiliumEndpoint.
pub fn parse_endpoint(object: &DynamicObject) -> Option<(Ipv4Addr, u32, Ipv4Addr)> {
    let status = object.data.get("status")?;
    let identity = u32::try_from(status.pointer("/identity/id")?.as_u64()?).ok()?;
    let ipv4 = status
        .pointer("/networking/addressing/0/ipv4")?
        .as_str()?
        .parse()
        .ok()?;
    let node = status.pointer("/networking/node")?.as_str()?.parse().ok()?;
    Some((ipv4, identity, node))
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

/// This node's CiliumNode.
pub fn node_object(
    name: &str,
    ip: Ipv4Addr,
    pod_cidr: &str,
    health: Option<Ipv4Addr>,
) -> DynamicObject {
    let mut spec = json!({
        "addresses": [{"type": "InternalIP", "ip": ip.to_string()}],
        "ipam": {"podCIDRs": [pod_cidr]},
    });
    if let Some(health) = health {
        spec["health"] = json!({"ipv4": health.to_string()});
    }
    object(
        &node_resource(),
        ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        json!({ "spec": spec }),
    )
}

/// What a CiliumNode says about its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    /// The InternalIP address.
    pub ipv4: Ipv4Addr,
    /// The first pod CIDR.
    pub pod_cidr: String,
    pub health_ipv4: Option<Ipv4Addr>,
}

/// A CiliumNode's node, if it names an InternalIP and a pod CIDR.
pub fn parse_node(object: &DynamicObject) -> Option<NodeView> {
    let spec = object.data.get("spec")?;
    let ipv4 = spec
        .get("addresses")?
        .as_array()?
        .iter()
        .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))?
        .get("ip")?
        .as_str()?
        .parse()
        .ok()?;
    let pod_cidr = spec.pointer("/ipam/podCIDRs/0")?.as_str()?.to_string();
    let health_ipv4 = spec
        .pointer("/health/ipv4")
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse().ok());
    Some(NodeView {
        name: object.metadata.name.clone()?,
        ipv4,
        pod_cidr,
        health_ipv4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_read_back_as_written() {
        let labels =
            Labels::parse_all(&["k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"]).unwrap();
        let identity = identity_object(4242, &labels);
        assert_eq!(parse_identity(&identity), Some((4242, labels)));

        let view = EndpointView {
            endpoint_id: 7,
            identity: 4242,
            labels: vec!["k8s:app=web".into()],
            ipv4: Ipv4Addr::new(10, 0, 1, 5),
            node_ip: Ipv4Addr::new(192, 168, 0, 11),
            named_ports: vec![("http".into(), 8080, "TCP".into())],
        };
        let endpoint = endpoint_object("shop", "web-1", Some("uid-1"), &view);
        assert_eq!(
            parse_endpoint(&endpoint),
            Some((view.ipv4, 4242, view.node_ip))
        );
        assert_eq!(endpoint_named_ports(&endpoint), view.named_ports);
        assert_eq!(endpoint.metadata.owner_references.unwrap()[0].uid, "uid-1");

        let health = Some(Ipv4Addr::new(10, 0, 1, 9));
        let node = node_object(
            "node1",
            Ipv4Addr::new(192, 168, 0, 11),
            "10.0.1.0/24",
            health,
        );
        assert_eq!(
            parse_node(&node),
            Some(NodeView {
                name: "node1".into(),
                ipv4: Ipv4Addr::new(192, 168, 0, 11),
                pod_cidr: "10.0.1.0/24".into(),
                health_ipv4: health,
            })
        );
    }
}
