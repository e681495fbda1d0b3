//! What an answer tells: the addresses a name resolves to, through any
//! CNAME chain, and how long they may be cached. This is what the agent
//! learns before the answer is released to the pod.

use std::collections::HashSet;
use std::net::IpAddr;

use policy::fqdn::normalize;

use super::wire::{Message, RecordData};

/// Longest CNAME chain followed (resolvers give up well before this).
const MAX_CHAIN: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerSummary {
    /// The first question's name, normalized (lowercase, no trailing dot).
    pub name: String,
    /// Addresses of the name or of the end of its CNAME chain, in answer order.
    pub ips: Vec<IpAddr>,
    /// Lowest TTL among the records that give `ips` (the CNAMEs followed and
    /// the address records); 0 without addresses.
    pub ttl: u32,
    /// The chain's targets, in order, normalized.
    pub cnames: Vec<String>,
    pub rcode: u8,
}

/// Follows the first question's name through the answer section's CNAME
/// records, then takes the A/AAAA records of the names on that chain.
/// Records for names off the chain are ignored, as Cilium does.
pub fn summarize(message: &Message) -> AnswerSummary {
    let rcode = message.header.rcode();
    let Some(question) = message.questions.first() else {
        return AnswerSummary {
            rcode,
            ..AnswerSummary::default()
        };
    };
    let name = normalize(&question.name);
    let mut chain = vec![name.clone()];
    let mut ttl = u32::MAX;
    let mut current = name.clone();
    while chain.len() <= MAX_CHAIN {
        let next = message
            .answers
            .iter()
            .find_map(|record| match &record.data {
                RecordData::Cname(target) if normalize(&record.name) == current => {
                    Some((normalize(target), record.ttl))
                }
                _ => None,
            });
        let Some((target, cname_ttl)) = next else {
            break;
        };
        if chain.contains(&target) {
            break;
        }
        ttl = ttl.min(cname_ttl);
        chain.push(target.clone());
        current = target;
    }
    let on_chain: HashSet<&str> = chain.iter().map(String::as_str).collect();
    let mut ips = Vec::new();
    let mut ip_ttl = u32::MAX;
    for record in &message.answers {
        let ip = match record.data {
            RecordData::A(ip) => IpAddr::V4(ip),
            RecordData::Aaaa(ip) => IpAddr::V6(ip),
            _ => continue,
        };
        if on_chain.contains(normalize(&record.name).as_str()) {
            ip_ttl = ip_ttl.min(record.ttl);
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    let ttl = if ips.is_empty() { 0 } else { ttl.min(ip_ttl) };
    chain.remove(0);
    AnswerSummary {
        name,
        ips,
        ttl,
        cnames: chain,
        rcode,
    }
}
