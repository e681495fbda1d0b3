//! Map pressure: how full each BPF map is, and a loud warning (agent log
//! and status) naming the map and the flag that resizes it when it nears
//! its limit, so a full map never drops traffic silently.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use api::models::BpfMapProperties;
use datapath::maps::{self, sizes};
use datapath::BpfRoot;

use super::Registry;
use crate::daemon::{observe::MapFill, Daemon};

/// Fill level from which a map is reported.
pub const WARN_AT: f64 = 0.9;
/// How often the watcher looks.
const INTERVAL: Duration = Duration::from_secs(10);

/// Sizes in bpf/lib/maps.h of the maps without a size flag, for when the
/// kernel cannot tell (the map is not pinned where expected).
const FIXED: [(&str, u64); 3] = [
    (maps::LXC_MAP, 65_535),
    (maps::IPCACHE_MAP, 512_000),
    (maps::METRICS_MAP, 1_024),
];

const NO_FLAG: &str = "its size in bpf/lib/maps.h (Cilium has no flag for it)";
const CT_HINT: &str =
    "--bpf-ct-global-tcp-max / --bpf-ct-global-any-max (one map holds both: its size is their sum)";

/// How to make a map bigger: the flag that resizes it, by its pinned name.
pub fn resize_hint(name: &str) -> &'static str {
    match sizes::flag_of(name) {
        Some(sizes::FLAG_CT) => CT_HINT,
        Some(flag) => flag,
        None => NO_FLAG,
    }
}

/// The size a map is meant to have when its pin cannot be read.
fn expected_size(name: &str) -> Option<u64> {
    sizes::wanted(name).map(u64::from).or_else(|| {
        FIXED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, size)| *size)
    })
}

/// What status and metrics report for each map: sizes as the kernel has
/// them, a warning naming the resizing flag when a map nears full, and a
/// note when a pinned map kept another size than its flag asks for.
pub fn properties(fill: &[MapFill], root: &BpfRoot) -> Vec<BpfMapProperties> {
    properties_with(fill, |name| {
        sizes::pinned_max_entries(root, name).map(u64::from)
    })
    .into_iter()
    .map(|mut p| {
        if let Some(mismatch) = sizes::mismatch(root, &p.name) {
            if !p.warning.is_empty() {
                p.warning.push_str("; ");
            }
            p.warning.push_str(&mismatch.explain(root));
        }
        p
    })
    .collect()
}

/// [`properties`] with the kernel's sizes given by `pinned_size`.
fn properties_with(
    fill: &[MapFill],
    pinned_size: impl Fn(&str) -> Option<u64>,
) -> Vec<BpfMapProperties> {
    fill.iter()
        .filter_map(|f| {
            let size = pinned_size(&f.name).or_else(|| expected_size(&f.name))?;
            let pressure = f.entries as f64 / size.max(1) as f64;
            Some(BpfMapProperties {
                name: f.name.clone(),
                size,
                entries: f.entries,
                pressure,
                warning: if pressure >= WARN_AT {
                    warning(&f.name, f.entries, size, resize_hint(&f.name))
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
        let props = properties(&fill, daemon.bpf_root());
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

    fn fill(name: &str, entries: u64) -> MapFill {
        MapFill {
            name: name.into(),
            entries,
        }
    }

    #[test]
    fn full_maps_warn_with_the_flag_that_resizes_them() {
        assert_eq!(resize_hint("cilium_policy_00012"), "--bpf-policy-map-max");
        assert!(resize_hint(maps::CT_MAP).contains("--bpf-ct-global-tcp-max"));
        assert!(resize_hint(maps::LXC_MAP).contains("no flag"));
        // Sizes come from the kernel; these stand in for it.
        let pinned = |name: &str| match name {
            "cilium_policy_00003" => Some(64),
            _ => None,
        };
        let props = properties_with(
            &[
                fill(maps::CT_MAP, 262_144),
                fill("cilium_policy_00003", 32),
                fill("cilium_events", 1),
            ],
            pinned,
        );
        assert_eq!(props.len(), 2, "maps without a known size are left out");
        assert_eq!((props[1].size, props[1].pressure), (64, 0.5));
        assert!(props[1].warning.is_empty());
        assert!(
            props[0]
                .warning
                .starts_with("BPF map cilium_ct4_global is full (262144/262144 entries, 100%)"),
            "{}",
            props[0].warning
        );
        assert!(props[0].warning.contains("--bpf-ct-global-tcp-max"));
        let nearly = properties_with(&[fill("cilium_policy_00003", 60)], pinned);
        assert!(
            nearly[0]
                .warning
                .contains("is nearly full (60/64 entries, 94%)")
                && nearly[0].warning.ends_with("raise --bpf-policy-map-max"),
            "{}",
            nearly[0].warning
        );
    }
}
