//! Hubble's flow filters, with Hubble's semantics: a flow passes when it
//! matches at least one whitelist filter (or there is none) and no
//! blacklist filter. Within one filter every field that is set must match;
//! within one field, any of its values.

use std::net::Ipv4Addr;

use crate::proto::flow::{layer4, layer7, Endpoint, Flow, FlowFilter};

#[derive(Debug, Default)]
pub struct FlowFilters {
    whitelist: Vec<Compiled>,
    blacklist: Vec<Compiled>,
}

impl FlowFilters {
    /// Checks every value once; an invalid one (a bad IP or port) is an
    /// error that names it.
    pub fn new(whitelist: &[FlowFilter], blacklist: &[FlowFilter]) -> Result<Self, String> {
        let compile = |list: &[FlowFilter]| {
            list.iter()
                .map(Compiled::new)
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(FlowFilters {
            whitelist: compile(whitelist)?,
            blacklist: compile(blacklist)?,
        })
    }

    pub fn matches(&self, flow: &Flow) -> bool {
        (self.whitelist.is_empty() || self.whitelist.iter().any(|f| f.matches(flow)))
            && !self.blacklist.iter().any(|f| f.matches(flow))
    }
}

#[derive(Debug)]
struct Compiled {
    raw: FlowFilter,
    source_ip: Vec<Cidr>,
    destination_ip: Vec<Cidr>,
    source_pod: Vec<PodPrefix>,
    destination_pod: Vec<PodPrefix>,
    source_label: Vec<Vec<Requirement>>,
    destination_label: Vec<Vec<Requirement>>,
    source_port: Vec<u32>,
    destination_port: Vec<u32>,
    protocol: Vec<String>,
}

impl Compiled {
    fn new(f: &FlowFilter) -> Result<Self, String> {
        let ips = |v: &[String]| v.iter().map(|s| Cidr::parse(s)).collect::<Result<_, _>>();
        let ports = |v: &[String]| {
            v.iter()
                .map(|p| {
                    p.parse::<u16>()
                        .map(u32::from)
                        .map_err(|_| format!("invalid port {p:?}"))
                })
                .collect::<Result<_, _>>()
        };
        Ok(Compiled {
            raw: f.clone(),
            source_ip: ips(&f.source_ip)?,
            destination_ip: ips(&f.destination_ip)?,
            source_pod: f.source_pod.iter().map(|p| PodPrefix::parse(p)).collect(),
            destination_pod: f
                .destination_pod
                .iter()
                .map(|p| PodPrefix::parse(p))
                .collect(),
            source_label: f
                .source_label
                .iter()
                .map(|s| selector(s))
                .collect::<Result<_, _>>()?,
            destination_label: f
                .destination_label
                .iter()
                .map(|s| selector(s))
                .collect::<Result<_, _>>()?,
            source_port: ports(&f.source_port)?,
            destination_port: ports(&f.destination_port)?,
            protocol: f.protocol.iter().map(|p| p.to_ascii_lowercase()).collect(),
        })
    }

    fn matches(&self, flow: &Flow) -> bool {
        let f = &self.raw;
        let ip = flow.ip.as_ref();
        let src_ip = ip.and_then(|i| i.source.parse::<Ipv4Addr>().ok());
        let dst_ip = ip.and_then(|i| i.destination.parse::<Ipv4Addr>().ok());
        let (sport, dport) = ports(flow);
        let none_or = |empty: bool, hit: bool| empty || hit;
        none_or(
            self.source_ip.is_empty(),
            src_ip.is_some_and(|a| self.source_ip.iter().any(|c| c.contains(a))),
        ) && none_or(
            self.destination_ip.is_empty(),
            dst_ip.is_some_and(|a| self.destination_ip.iter().any(|c| c.contains(a))),
        ) && none_or(
            self.source_pod.is_empty(),
            self.source_pod
                .iter()
                .any(|p| p.matches(flow.source.as_ref())),
        ) && none_or(
            self.destination_pod.is_empty(),
            self.destination_pod
                .iter()
                .any(|p| p.matches(flow.destination.as_ref())),
        ) && none_or(
            self.source_label.is_empty(),
            self.source_label
                .iter()
                .any(|s| labels_match(s, flow.source.as_ref())),
        ) && none_or(
            self.destination_label.is_empty(),
            self.destination_label
                .iter()
                .any(|s| labels_match(s, flow.destination.as_ref())),
        ) && none_or(f.verdict.is_empty(), f.verdict.contains(&flow.verdict))
            && none_or(
                f.drop_reason_desc.is_empty(),
                f.drop_reason_desc.contains(&flow.drop_reason_desc),
            )
            && none_or(
                f.traffic_direction.is_empty(),
                f.traffic_direction.contains(&flow.traffic_direction),
            )
            && none_or(
                f.event_type.is_empty(),
                f.event_type.iter().any(|t| {
                    flow.event_type.as_ref().is_some_and(|e| {
                        e.r#type == t.r#type && (!t.match_sub_type || e.sub_type == t.sub_type)
                    })
                }),
            )
            && none_or(
                self.protocol.is_empty(),
                self.protocol
                    .iter()
                    .any(|p| protocols(flow).contains(&p.as_str())),
            )
            && none_or(
                self.source_port.is_empty(),
                sport.is_some_and(|p| self.source_port.contains(&p)),
            )
            && none_or(
                self.destination_port.is_empty(),
                dport.is_some_and(|p| self.destination_port.contains(&p)),
            )
            && none_or(
                f.reply.is_empty(),
                f.reply.contains(&flow.is_reply.unwrap_or(false)),
            )
            && none_or(
                f.source_identity.is_empty(),
                flow.source
                    .as_ref()
                    .is_some_and(|e| f.source_identity.contains(&e.identity)),
            )
            && none_or(
                f.destination_identity.is_empty(),
                flow.destination
                    .as_ref()
                    .is_some_and(|e| f.destination_identity.contains(&e.identity)),
            )
            && none_or(
                f.node_name.is_empty(),
                f.node_name.contains(&flow.node_name),
            )
    }
}

fn ports(flow: &Flow) -> (Option<u32>, Option<u32>) {
    match flow.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(t)) => (Some(t.source_port), Some(t.destination_port)),
        Some(layer4::Protocol::Udp(u)) => (Some(u.source_port), Some(u.destination_port)),
        _ => (None, None),
    }
}

/// The protocol names a flow answers to: its L4 protocol and, for L7
/// flows, the L7 one (Hubble's `--protocol`).
fn protocols(flow: &Flow) -> Vec<&'static str> {
    let mut out = Vec::new();
    match flow.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(_)) => out.push("tcp"),
        Some(layer4::Protocol::Udp(_)) => out.push("udp"),
        Some(layer4::Protocol::IcmPv4(_)) => out.extend(["icmp", "icmpv4"]),
        Some(layer4::Protocol::IcmPv6(_)) => out.push("icmpv6"),
        None => {}
    }
    match flow.l7.as_ref().and_then(|l| l.record.as_ref()) {
        Some(layer7::Record::Http(_)) => out.push("http"),
        Some(layer7::Record::Dns(_)) => out.push("dns"),
        Some(layer7::Record::Kafka(_)) => out.push("kafka"),
        None => {}
    }
    out
}

/// An address or an IPv4 prefix.
#[derive(Debug)]
struct Cidr {
    net: u32,
    mask: u32,
}

impl Cidr {
    fn parse(s: &str) -> Result<Cidr, String> {
        let bad = || format!("invalid IP address or CIDR {s:?}");
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (
                a,
                l.parse::<u8>().ok().filter(|l| *l <= 32).ok_or_else(bad)?,
            ),
            None => (s, 32),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        Ok(Cidr {
            net: u32::from(addr) & mask,
            mask,
        })
    }

    fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask == self.net
    }
}

/// `[namespace/]pod-name-prefix`; without a namespace, "default" (as
/// Hubble); `namespace/` alone selects the whole namespace.
#[derive(Debug)]
struct PodPrefix {
    namespace: String,
    prefix: String,
}

impl PodPrefix {
    fn parse(s: &str) -> PodPrefix {
        let (namespace, prefix) = s.split_once('/').unwrap_or(("default", s));
        PodPrefix {
            namespace: namespace.to_string(),
            prefix: prefix.to_string(),
        }
    }

    fn matches(&self, ep: Option<&Endpoint>) -> bool {
        ep.is_some_and(|ep| {
            ep.namespace == self.namespace
                && (self.prefix.is_empty()
                    || (!ep.pod_name.is_empty() && ep.pod_name.starts_with(&self.prefix)))
        })
    }
}

/// One requirement of a label selector (`key=value`, `key!=value`, `key`,
/// `!key`); keys may carry a source (`k8s:app`), else any source matches.
#[derive(Debug, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

/// A comma-separated label selector, as `hubble observe --label` sends it.
fn selector(s: &str) -> Result<Vec<Requirement>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            let req = if let Some((k, v)) = r.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = r.strip_prefix('!') {
                Requirement::NotExists(k.trim().into())
            } else {
                Requirement::Exists(r.into())
            };
            match &req {
                Requirement::Equals(k, _)
                | Requirement::NotEquals(k, _)
                | Requirement::Exists(k)
                | Requirement::NotExists(k)
                    if k.is_empty() =>
                {
                    Err(format!("invalid label selector {s:?}"))
                }
                _ => Ok(req),
            }
        })
        .collect()
}

fn labels_match(selector: &[Requirement], ep: Option<&Endpoint>) -> bool {
    let Some(ep) = ep else { return false };
    // Flow labels read "source:key=value".
    let values = |key: &str| -> Vec<&str> {
        ep.labels
            .iter()
            .filter_map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                let same = match key.split_once(':') {
                    Some(_) => k == key,
                    None => k.split_once(':').map_or(k, |(_, k)| k) == key,
                };
                same.then_some(v)
            })
            .collect()
    };
    selector.iter().all(|r| match r {
        Requirement::Equals(k, v) => values(k).contains(&v.as_str()),
        Requirement::NotEquals(k, v) => !values(k).contains(&v.as_str()),
        Requirement::Exists(k) => !values(k).is_empty(),
        Requirement::NotExists(k) => values(k).is_empty(),
    })
}

#[cfg(test)]
mod tests;
