//! Map pressure: how full each BPF map is, and a loud warning (agent log
//! and status) naming the map and the flag that resizes it when it nears
//! its limit, so a full map never drops traffic silently.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use api::models::BpfMapProperties;
use datapath::maps;

use super::Registry;
use crate::daemon::{observe::MapFill, Daemon};

/// Fill level from which a map is reported.
pub const WARN_AT: f64 = 0.9;
/// How often the watcher looks.
const INTERVAL: Duration = Duration::from_secs(10);

/// max_entries of each map and how to raise it. The sizes mirror
/// bpf/lib/maps.h: the datapath does not yet report them nor accept sizes
/// at load time, hence Cilium's flag names with that caveat.
const LIMITS: [(&str, u64, &str); 5] = [
    (
        maps::LXC_MAP,
        65_535,
        "its size in bpf/lib/maps.h (Cilium has no flag for it)",
    ),
    (
        maps::IPCACHE_MAP,
        512_000,
        "its size in bpf/lib/maps.h (Cilium has no flag for it)",
    ),
    (
        maps::CT_MAP,
        262_144,
        "--bpf-ct-global-tcp-max / --bpf-ct-global-any-max (for now: its size in bpf/lib/maps.h)",
    ),
    (
        maps::METRICS_MAP,
        1_024,
        "its size in bpf/lib/maps.h (Cilium has no flag for it)",
    ),
    (
        "cilium_policy_",
        16_384,
        "--bpf-policy-map-max (for now: its size in bpf/lib/maps.h)",
    ),
];

/// max_entries and the resizing hint of a map, by name (policy maps by prefix).
pub fn limit_of(name: &str) -> Option<(u64, &'static str)> {
    LIMITS
        .iter()
        .find(|(n, _, _)| name == *n || (n.ends_with('_') && name.starts_with(n)))
        .map(|(_, size, flag)| (*size, *flag))
}

/// What status and metrics report for each map.
pub fn properties(fill: &[MapFill]) -> Vec<BpfMapProperties> {
    fill.iter()
        .filter_map(|f| {
            let (size, flag) = limit_of(&f.name)?;
            let pressure = f.entries as f64 / size as f64;
            Some(BpfMapProperties {
                name: f.name.clone(),
                size,
                entries: f.entries,
                pressure,
                warning: if pressure >= WARN_AT {
                    warning(&f.name, f.entries, size, flag)
                } else {
                    String::new()
                },
            })
        })
        .collect()
}

pub fn warning(name: &str, entries: u64, size: u64, flag: &str) -> String {
    let what = if entries >= size {
        "is full"
    } else {
        "is nearly full"
    };
    format!(
        "BPF map {name} {what} ({entries}/{size} entries, {:.0}%): new entries fail and the traffic needing them is dropped; raise {flag}",
        entries as f64 * 100.0 / size as f64
    )
}

/// Looks at every map every few seconds; logs a map when it crosses
/// [`WARN_AT`] (once per crossing) and keeps the status' view current.
pub async fn watch(daemon: Arc<Daemon>, registry: Arc<Registry>) {
    let mut warned: BTreeSet<String> = BTreeSet::new();
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        let d = daemon.clone();
        let fill = match tokio::task::spawn_blocking(move || d.map_fill()).await {
            Ok(Ok(fill)) => fill,
            Ok(Err(e)) => {
                registry
                    .map_pressure
                    .failure(format!("reading map fill levels: {e}"));
                continue;
            }
            Err(e) => {
                registry
                    .map_pressure
                    .failure(format!("map pressure task: {e}"));
                continue;
            }
        };
        let props = properties(&fill);
        for p in &props {
            if p.warning.is_empty() {
                if warned.remove(&p.name) {
                    eprintln!(
                        "level=info msg=\"BPF map {} is below {:.0}% again\"",
                        p.name,
                        WARN_AT * 100.0
                    );
                }
            } else if warned.insert(p.name.clone()) {
                eprintln!("level=warning msg=\"{}\"", p.warning);
            }
        }
        registry.set_maps(props);
        registry.map_pressure.success();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_maps_match_by_prefix_and_full_maps_warn_with_the_flag() {
        assert_eq!(limit_of("cilium_policy_00012").unwrap().0, 16_384);
        assert_eq!(limit_of(maps::CT_MAP).unwrap().0, 262_144);
        assert!(limit_of("cilium_events").is_none());
        let fill = [
            MapFill {
                name: maps::CT_MAP.into(),
                entries: 262_144,
            },
            MapFill {
                name: "cilium_policy_00003".into(),
                entries: 8_192,
            },
        ];
        let props = properties(&fill);
        assert_eq!(props[1].pressure, 0.5);
        assert!(props[1].warning.is_empty());
        assert!(
            props[0]
                .warning
                .starts_with("BPF map cilium_ct4_global is full (262144/262144 entries, 100%)"),
            "{}",
            props[0].warning
        );
        assert!(props[0].warning.contains("--bpf-ct-global-tcp-max"));
        let nearly = properties(&[MapFill {
            name: "cilium_policy_00003".into(),
            entries: 15_000,
        }]);
        assert!(
            nearly[0].warning.contains("is nearly full")
                && nearly[0].warning.contains("--bpf-policy-map-max")
        );
    }
}
