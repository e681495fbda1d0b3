//! `cilium bpf nat list`: NodePort's source translations, one line per
//! direction as Cilium prints them (`TCP OUT client -> backend XLATE_SRC
//! node:port`, `TCP IN backend -> node:port XLATE_DST client`).

use api::{BpfMap, BpfMapEntry};

use crate::proto;

pub fn render(map: &BpfMap) -> String {
    let mut lines: Vec<String> = map
        .entries
        .iter()
        .filter_map(|e| match e {
            BpfMapEntry::Nat {
                protocol,
                direction,
                src,
                dst,
                translated,
                rev_nat_index,
            } => {
                let xlate = if direction == "IN" {
                    "XLATE_DST"
                } else {
                    "XLATE_SRC"
                };
                Some(format!(
                    "{} {direction} {src} -> {dst} {xlate} {translated} RevNAT={rev_nat_index}\n",
                    proto::name(*protocol)
                ))
            }
            _ => None,
        })
        .collect();
    lines.sort();
    lines.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_direction_says_what_it_translates() {
        let entry = |direction: &str, src: &str, dst: &str, to: &str| BpfMapEntry::Nat {
            protocol: 6,
            direction: direction.into(),
            src: src.into(),
            dst: dst.into(),
            translated: to.into(),
            rev_nat_index: 7,
        };
        let map = BpfMap {
            path: String::new(),
            name: "cilium_snat_v4_external".into(),
            entries: vec![
                entry(
                    "OUT",
                    "198.51.100.7:40410",
                    "10.0.1.5:8080",
                    "192.0.2.10:61234",
                ),
                entry(
                    "IN",
                    "10.0.1.5:8080",
                    "192.0.2.10:61234",
                    "198.51.100.7:40410",
                ),
            ],
        };
        assert_eq!(
            render(&map),
            "TCP IN 10.0.1.5:8080 -> 192.0.2.10:61234 XLATE_DST 198.51.100.7:40410 RevNAT=7\n\
             TCP OUT 198.51.100.7:40410 -> 10.0.1.5:8080 XLATE_SRC 192.0.2.10:61234 RevNAT=7\n"
        );
    }
}
