//! What the page draws, shaped from stored flows: table rows, and the
//! service map — one box per workload (its namespace and `app` label, else
//! its pod, else its identity), one edge per (source, destination, verdict)
//! with the number of flows behind it. Pure: flows in, serialisable data out.

use hubble::names::reserved_identity_name;
use hubble::proto::flow::{layer4, Endpoint, Flow, Policy, Verdict};
use serde::Serialize;

#[derive(Debug, Serialize, PartialEq)]
pub struct Row {
    /// The flow's sequence number in the ring (stable across polls).
    pub id: u64,
    pub time: String,
    pub source: Side,
    pub destination: Side,
    /// `FORWARDED`, `DROPPED`, ...
    pub verdict: String,
    /// `L3_L4`, `L7`, ...
    pub kind: String,
    pub summary: String,
    /// The drop reason, empty unless dropped.
    pub reason: String,
    pub allowed_by: Vec<String>,
    pub denied_by: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Side {
    /// The map box this side belongs to.
    pub node: String,
    /// `namespace/pod`, else the box's name, then `:port` when there is one.
    pub name: String,
    pub ip: String,
    pub identity: u32,
}

#[derive(Debug, Serialize, PartialEq, Default)]
pub struct ServiceMap {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Node {
    /// `namespace/name`.
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub identity: u32,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// `forwarded`, `dropped` or `other`: the edge's colour.
    pub verdict: &'static str,
    pub count: u64,
}

/// The box an endpoint belongs to, as (namespace, name).
pub fn workload(ep: Option<&Endpoint>, ip: &str) -> (String, String) {
    let Some(ep) = ep else {
        return (String::new(), ip.to_string());
    };
    let app = ep.labels.iter().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        let key = key.split_once(':').map_or(key, |(_, k)| k);
        (key == "app" || key == "app.kubernetes.io/name").then(|| value.to_string())
    });
    let name = app
        .or_else(|| ep.workloads.first().map(|w| w.name.clone()))
        .or_else(|| (!ep.pod_name.is_empty()).then(|| ep.pod_name.clone()))
        .or_else(|| reserved_identity_name(ep.identity).map(str::to_string))
        .unwrap_or_else(|| match ep.identity {
            0 => ip.to_string(),
            id => format!("identity {id}"),
        });
    (ep.namespace.clone(), name)
}

fn node_id(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn verdict_class(v: i32) -> &'static str {
    match Verdict::try_from(v) {
        Ok(Verdict::Forwarded) | Ok(Verdict::Redirected) => "forwarded",
        Ok(Verdict::Dropped) | Ok(Verdict::Error) => "dropped",
        _ => "other",
    }
}

fn ports(flow: &Flow) -> (Option<u32>, Option<u32>) {
    match flow.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(t)) => (Some(t.source_port), Some(t.destination_port)),
        Some(layer4::Protocol::Udp(u)) => (Some(u.source_port), Some(u.destination_port)),
        _ => (None, None),
    }
}

/// `namespace/name` of a rule, else its labels.
fn rule_names(rules: &[Policy]) -> Vec<String> {
    rules
        .iter()
        .map(|p| match (p.namespace.as_str(), p.name.as_str()) {
            (_, "") => p.labels.join(","),
            ("", name) => name.to_string(),
            (ns, name) => format!("{ns}/{name}"),
        })
        .collect()
}

fn side(ep: Option<&Endpoint>, ip: &str, port: Option<u32>) -> Side {
    let (namespace, box_name) = workload(ep, ip);
    let mut name = match ep {
        Some(e) if !e.pod_name.is_empty() && !e.namespace.is_empty() => {
            format!("{}/{}", e.namespace, e.pod_name)
        }
        Some(e) if !e.pod_name.is_empty() => e.pod_name.clone(),
        _ => box_name.clone(),
    };
    if let Some(p) = port {
        name = format!("{name}:{p}");
    }
    Side {
        node: node_id(&namespace, &box_name),
        name,
        ip: ip.to_string(),
        identity: ep.map_or(0, |e| e.identity),
    }
}

pub fn row(id: u64, flow: &Flow) -> Row {
    let (src_ip, dst_ip) = flow
        .ip
        .as_ref()
        .map_or((String::new(), String::new()), |ip| {
            (ip.source.clone(), ip.destination.clone())
        });
    let (sport, dport) = ports(flow);
    let verdict = Verdict::try_from(flow.verdict).unwrap_or(Verdict::Unknown);
    let reason = if verdict == Verdict::Dropped {
        hubble::names::drop_reason_text(flow.drop_reason)
    } else {
        String::new()
    };
    let mut allowed_by = rule_names(&flow.egress_allowed_by);
    allowed_by.extend(rule_names(&flow.ingress_allowed_by));
    let mut denied_by = rule_names(&flow.egress_denied_by);
    denied_by.extend(rule_names(&flow.ingress_denied_by));
    Row {
        id,
        time: flow.time.map(|t| t.to_rfc3339()).unwrap_or_default(),
        source: side(flow.source.as_ref(), &src_ip, sport),
        destination: side(flow.destination.as_ref(), &dst_ip, dport),
        verdict: verdict.as_str_name().to_string(),
        kind: flow.r#type().as_str_name().to_string(),
        summary: flow.summary.clone(),
        reason,
        allowed_by,
        denied_by,
    }
}

/// A flow's edge on the map: its two boxes and its colour; `None` for a
/// reply, so an edge points from the side that opened the connection.
pub fn edge_of(flow: &Flow) -> Option<(Node, Node, &'static str)> {
    if flow.is_reply == Some(true) {
        return None;
    }
    let (src_ip, dst_ip) = flow
        .ip
        .as_ref()
        .map_or(("", ""), |ip| (ip.source.as_str(), ip.destination.as_str()));
    let node = |ep: Option<&Endpoint>, ip: &str| {
        let (namespace, name) = workload(ep, ip);
        Node {
            id: node_id(&namespace, &name),
            namespace,
            name,
            identity: ep.map_or(0, |e| e.identity),
        }
    };
    Some((
        node(flow.source.as_ref(), src_ip),
        node(flow.destination.as_ref(), dst_ip),
        verdict_class(flow.verdict),
    ))
}

/// The map of `flows`, computed from all of them (`live_map` keeps the
/// same up to date flow by flow, and is checked against it).
#[cfg(test)]
pub fn service_map<'a>(flows: impl IntoIterator<Item = &'a Flow>) -> ServiceMap {
    use std::collections::BTreeMap;
    let mut nodes = BTreeMap::new();
    let mut edges: BTreeMap<(String, String, &'static str), u64> = BTreeMap::new();
    for (from, to, verdict) in flows.into_iter().filter_map(edge_of) {
        let key = (from.id.clone(), to.id.clone(), verdict);
        nodes.entry(from.id.clone()).or_insert(from);
        nodes.entry(to.id.clone()).or_insert(to);
        *edges.entry(key).or_default() += 1;
    }
    ServiceMap {
        nodes: nodes.into_values().collect(),
        edges: edges
            .into_iter()
            .map(|((from, to, verdict), count)| Edge {
                from,
                to,
                verdict,
                count,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
