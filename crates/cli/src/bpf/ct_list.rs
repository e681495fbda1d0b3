//! `cilium bpf ct list global`: one line per connection-tracking entry.

use anyhow::{bail, Result};
use api::{BpfMap, BpfMapEntry, Client};

use crate::output::{emit, to_json, OutputFormat};
use crate::proto;

#[derive(clap::Args, Debug)]
pub struct CtListArgs {
    /// Which table: only `global` exists here
    table: String,
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

/// Cilium's global table is its IPv4 and IPv6 maps.
const GLOBAL_MAPS: [&str; 2] = ["cilium_ct4_global", "cilium_ct6_global"];

pub fn run(client: &Client, args: &CtListArgs) -> Result<()> {
    if args.table != "global" {
        bail!(
            "unknown connection tracking table {:?}: only \"global\" is supported",
            args.table
        );
    }
    let map = super::fetch_all(client, &GLOBAL_MAPS)?;
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&map.entries)?),
        None => emit(&render(&map)),
    }
    Ok(())
}

/// Flag names in the order of their bits in Cilium's `ct_entry`, so the hex
/// value printed next to them means what a Cilium user expects.
const FLAG_BITS: [&str; 8] = [
    "RxClosing",
    "TxClosing",
    "Nat64",
    "LBLoopback",
    "SeenNonSyn",
    "NodePort",
    "ProxyRedirect",
    "DSRInternal",
];

pub fn render(map: &BpfMap) -> String {
    let mut out = String::new();
    for entry in &map.entries {
        if let BpfMapEntry::Ct {
            protocol,
            direction,
            src,
            dst,
            expires_in_secs,
            rx_packets,
            rx_bytes,
            tx_packets,
            tx_bytes,
            flags,
            src_identity,
        } = entry
        {
            out.push_str(&format!(
                "{} {direction} {src} -> {dst} expires={expires_in_secs} RxPackets={rx_packets} \
                 RxBytes={rx_bytes} TxPackets={tx_packets} TxBytes={tx_bytes} Flags={} \
                 SourceSecurityID={src_identity}\n",
                proto::name(*protocol),
                flags_text(flags),
            ));
        }
    }
    out
}

/// `0x0013 [ RxClosing TxClosing SeenNonSyn ]`.
fn flags_text(flags: &[String]) -> String {
    let bits = flags
        .iter()
        .filter_map(|f| FLAG_BITS.iter().position(|known| known == f))
        .fold(0u16, |acc, bit| acc | (1 << bit));
    let mut names = String::new();
    for f in flags {
        names.push_str(f);
        names.push(' ');
    }
    format!("{bits:#06x} [ {names}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_entry() {
        let map = BpfMap {
            entries: vec![BpfMapEntry::Ct {
                protocol: 6,
                direction: "OUT".into(),
                src: "10.200.0.5:41234".into(),
                dst: "10.200.0.6:80".into(),
                expires_in_secs: 21590,
                rx_packets: 4,
                rx_bytes: 300,
                tx_packets: 5,
                tx_bytes: 400,
                flags: vec!["RxClosing".into(), "TxClosing".into(), "SeenNonSyn".into()],
                src_identity: 256,
            }],
            ..Default::default()
        };
        assert_eq!(
            render(&map),
            "TCP OUT 10.200.0.5:41234 -> 10.200.0.6:80 expires=21590 RxPackets=4 RxBytes=300 \
             TxPackets=5 TxBytes=400 Flags=0x0013 [ RxClosing TxClosing SeenNonSyn ] \
             SourceSecurityID=256\n"
        );
    }

    #[test]
    fn no_flags() {
        assert_eq!(flags_text(&[]), "0x0000 [ ]");
    }
}
