//! `cilium_metrics`: per-CPU packet and byte counters by (reason, direction)
//! (`struct metrics_key` / `struct metrics_value` in bpf/lib/maps.h).

use aya::maps::{Map, MapData, PerCpuHashMap};

use crate::DatapathError;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
unsafe impl aya::Pod for MetricsKey {}
unsafe impl aya::Pod for MetricsValue {}

pub struct MetricsMap(PerCpuHashMap<MapData, MetricsKey, MetricsValue>);

impl MetricsMap {
    pub(crate) fn new(map: Map) -> Result<Self, DatapathError> {
        let map =
            PerCpuHashMap::try_from(map).map_err(|e| DatapathError::map(super::METRICS_MAP, e))?;
        Ok(MetricsMap(map))
    }

    /// Counters summed over CPUs.
    pub fn totals(&self) -> Result<Vec<(MetricsKey, MetricsValue)>, DatapathError> {
        let all: Result<Vec<_>, DatapathError> = self
            .0
            .iter()
            .map(|r| {
                r.map(|(k, per_cpu)| {
                    let sum = per_cpu
                        .iter()
                        .fold(MetricsValue::default(), |acc, v| MetricsValue {
                            packets: acc.packets + v.packets,
                            bytes: acc.bytes + v.bytes,
                        });
                    (k, sum)
                })
                .map_err(|e| DatapathError::map(super::METRICS_MAP, e))
            })
            .collect();
        super::ops::record(
            super::ops::CountedMap::Metrics,
            super::ops::MapOp::Dump,
            all.is_ok(),
        );
        all
    }
}
