//! `cilium bpf tunnel list`: where traffic to each remote prefix is
//! encapsulated to — the ipcache entries that carry a tunnel endpoint
//! (Cilium's TUNNEL / VALUE columns: prefix, then the node's IP).

use api::{BpfMap, BpfMapEntry};

use crate::table::Table;

/// (prefix, tunnel endpoint) of every ipcache entry with a non-zero
/// endpoint, sorted by prefix.
pub fn tunnels(map: &BpfMap) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = map
        .entries
        .iter()
        .filter_map(|e| match e {
            BpfMapEntry::Ipcache {
                prefix,
                tunnel_endpoint,
                ..
            } if !tunnel_endpoint.is_empty() && tunnel_endpoint != "0.0.0.0" => {
                Some((prefix.clone(), tunnel_endpoint.clone()))
            }
            _ => None,
        })
        .collect();
    rows.sort();
    rows
}

pub fn render(map: &BpfMap) -> String {
    let mut t = Table::new();
    t.row(["TUNNEL", "VALUE"]);
    for (prefix, endpoint) in tunnels(map) {
        t.row([prefix, endpoint]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entries_with_a_tunnel_endpoint() {
        let entry = |prefix: &str, tunnel: &str| BpfMapEntry::Ipcache {
            prefix: prefix.into(),
            identity: 300,
            tunnel_endpoint: tunnel.into(),
        };
        let map = BpfMap {
            entries: vec![
                entry("10.1.2.7/32", "192.168.250.12"),
                entry("10.1.0.5/32", ""),
                entry("10.1.1.9/32", "192.168.250.11"),
                entry("10.1.0.6/32", "0.0.0.0"),
            ],
            ..Default::default()
        };
        assert_eq!(
            render(&map),
            "TUNNEL        VALUE\n\
             10.1.1.9/32   192.168.250.11\n\
             10.1.2.7/32   192.168.250.12\n"
        );
    }
}
