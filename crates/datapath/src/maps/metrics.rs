//! `cilium_metrics`: per-CPU packet and byte counters by (reason, direction)
//! (`struct metrics_value` in bpf/lib/maps.h), an array indexed by
//! `reason | direction << 8`.

use aya::maps::{Map, MapData, MapInfo, MapType, PerCpuArray};

use crate::{BpfRoot, DatapathError};

/// `METRICS_ENTRIES` in bpf/lib/maps.h.
const ENTRIES: u32 = 512;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
/// What an index of the array counts.
pub struct MetricsKey {
    pub reason: u8,
    /// 1 = egress, 0 = ingress.
    pub dir: u8,
    pub pad: u16,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsValue {
    pub packets: u64,
    pub bytes: u64,
}

// SAFETY: plain #[repr(C)] data.
unsafe impl aya::Pod for MetricsValue {}

pub struct MetricsMap(PerCpuArray<MapData, MetricsValue>);

/// Removes a `cilium_metrics` pin of another shape (an older datapath's
/// hash), so loading creates the array; its counters start from zero.
pub(crate) fn remove_incompatible_pin(root: &BpfRoot) {
    let path = root.map(super::METRICS_MAP);
    let Ok(info) = MapInfo::from_pin(&path) else {
        return;
    };
    if !matches!(info.map_type(), Ok(MapType::PerCpuArray)) || info.max_entries() != ENTRIES {
        let _ = std::fs::remove_file(&path);
    }
}

impl MetricsMap {
    pub(crate) fn new(map: Map) -> Result<Self, DatapathError> {
        let map =
            PerCpuArray::try_from(map).map_err(|e| DatapathError::map(super::METRICS_MAP, e))?;
        Ok(MetricsMap(map))
    }

    /// Counters summed over CPUs, for every (reason, direction) that counted
    /// a packet.
    pub fn totals(&self) -> Result<Vec<(MetricsKey, MetricsValue)>, DatapathError> {
        let all: Result<Vec<_>, DatapathError> = self
            .0
            .iter()
            .enumerate()
            .map(|(index, r)| {
                r.map(|per_cpu| {
                    let sum = per_cpu
                        .iter()
                        .fold(MetricsValue::default(), |acc, v| MetricsValue {
                            packets: acc.packets + v.packets,
                            bytes: acc.bytes + v.bytes,
                        });
                    let key = MetricsKey {
                        reason: index as u8,
                        dir: (index >> 8) as u8,
                        pad: 0,
                    };
                    (key, sum)
                })
                .map_err(|e| DatapathError::map(super::METRICS_MAP, e))
            })
            .filter(|r| !matches!(r, Ok((_, v)) if v.packets == 0))
            .collect();
        super::ops::record(
            super::ops::CountedMap::Metrics,
            super::ops::MapOp::Dump,
            all.is_ok(),
        );
        all
    }
}
