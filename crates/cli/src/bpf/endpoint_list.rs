//! `cilium bpf endpoint list`: the local endpoint (lxc) map.

use api::{BpfMap, BpfMapEntry};

use crate::table::Table;

pub fn render(map: &BpfMap) -> String {
    let mut rows: Vec<(&str, String)> = map
        .entries
        .iter()
        .filter_map(|e| match e {
            BpfMapEntry::Lxc {
                ip,
                id,
                identity,
                ifindex,
                mac,
                node_mac,
            } => Some((
                ip.as_str(),
                format!(
                    "id={id} sec_id={identity} flags=0x0000 ifindex={ifindex} mac={mac} nodemac={node_mac}"
                ),
            )),
            _ => None,
        })
        .collect();
    rows.sort();
    let mut t = Table::new();
    t.row(["IP ADDRESS", "LOCAL ENDPOINT INFO"]);
    for (ip, info) in rows {
        t.row([format!("{ip}:0"), info]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lxc_rows() {
        let map = BpfMap {
            entries: vec![BpfMapEntry::Lxc {
                ip: "10.200.0.5".into(),
                id: 1234,
                identity: 256,
                ifindex: 12,
                mac: "aa:bb:cc:dd:ee:01".into(),
                node_mac: "aa:bb:cc:dd:ee:02".into(),
            }],
            ..Default::default()
        };
        assert_eq!(
            render(&map),
            "IP ADDRESS     LOCAL ENDPOINT INFO\n\
             10.200.0.5:0   id=1234 sec_id=256 flags=0x0000 ifindex=12 mac=aa:bb:cc:dd:ee:01 nodemac=aa:bb:cc:dd:ee:02\n"
        );
    }
}
