//! `cilium bpf ipcache list`.

use api::{BpfMap, BpfMapEntry};

use crate::table::Table;

pub fn render(map: &BpfMap) -> String {
    let mut rows: Vec<(&str, String)> = map
        .entries
        .iter()
        .filter_map(|e| match e {
            BpfMapEntry::Ipcache {
                prefix,
                identity,
                tunnel_endpoint,
            } => Some((prefix.as_str(), info(*identity, tunnel_endpoint))),
            _ => None,
        })
        .collect();
    rows.sort();
    let mut t = Table::new();
    t.row(["IP PREFIX/ADDRESS", "IDENTITY"]);
    for (prefix, info) in rows {
        t.row([prefix.to_string(), info]);
    }
    t.render()
}

fn info(identity: u32, tunnel_endpoint: &str) -> String {
    let tunnel = if tunnel_endpoint.is_empty() {
        "0.0.0.0"
    } else {
        tunnel_endpoint
    };
    format!("identity={identity} encryptkey=0 tunnelendpoint={tunnel}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipcache_rows() {
        let map = BpfMap {
            entries: vec![
                BpfMapEntry::Ipcache {
                    prefix: "10.200.0.6/32".into(),
                    identity: 257,
                    tunnel_endpoint: "192.168.1.2".into(),
                },
                BpfMapEntry::Ipcache {
                    prefix: "10.200.0.5/32".into(),
                    identity: 256,
                    tunnel_endpoint: String::new(),
                },
                BpfMapEntry::Ipcache {
                    prefix: "f00d::a0a:0:0:6/128".into(),
                    identity: 257,
                    tunnel_endpoint: "192.168.1.2".into(),
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            render(&map),
            "IP PREFIX/ADDRESS     IDENTITY\n\
             10.200.0.5/32         identity=256 encryptkey=0 tunnelendpoint=0.0.0.0\n\
             10.200.0.6/32         identity=257 encryptkey=0 tunnelendpoint=192.168.1.2\n\
             f00d::a0a:0:0:6/128   identity=257 encryptkey=0 tunnelendpoint=192.168.1.2\n"
        );
    }
}
