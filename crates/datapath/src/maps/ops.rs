//! Counts of the map operations user space performs, by map, operation and
//! outcome: Cilium's `cilium_bpf_map_ops_total`.
//!
//! Process-wide on purpose: every wrapper in this module's siblings counts,
//! whoever opened the map, and the agent reads the totals at scrape time.
//! One relaxed atomic add per operation, next to a system call that costs a
//! thousand times more, so policy imports of 100k updates do not notice.

use std::sync::atomic::{AtomicU64, Ordering};

use aya::maps::MapError;

/// The maps counted. Per-endpoint policy maps count together, as in Cilium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CountedMap {
    Lxc,
    Ipcache,
    Ct,
    Metrics,
    Policy,
    LbServices,
    LbBackends,
    LbReverseNat,
}

impl CountedMap {
    pub const ALL: [CountedMap; 8] = [
        CountedMap::Lxc,
        CountedMap::Ipcache,
        CountedMap::Ct,
        CountedMap::Metrics,
        CountedMap::Policy,
        CountedMap::LbServices,
        CountedMap::LbBackends,
        CountedMap::LbReverseNat,
    ];

    /// The `map_name` label: the map's name, `cilium_policy` for all
    /// endpoints' policy maps.
    pub fn name(self) -> &'static str {
        match self {
            CountedMap::Lxc => super::LXC_MAP,
            CountedMap::Ipcache => super::IPCACHE_MAP,
            CountedMap::Ct => super::CT_MAP,
            CountedMap::Metrics => super::METRICS_MAP,
            CountedMap::Policy => super::POLICY_MAP,
            CountedMap::LbServices => super::lb::SERVICES_MAP,
            CountedMap::LbBackends => super::lb::BACKENDS_MAP,
            CountedMap::LbReverseNat => super::lb::REVERSE_NAT_MAP,
        }
    }
}

/// Operations, with Cilium's label values; `dump` is one walk over every
/// entry (Cilium counts its getNextKey calls instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MapOp {
    Update,
    Delete,
    Lookup,
    Dump,
}

impl MapOp {
    pub const ALL: [MapOp; 4] = [MapOp::Update, MapOp::Delete, MapOp::Lookup, MapOp::Dump];

    pub fn name(self) -> &'static str {
        match self {
            MapOp::Update => "update",
            MapOp::Delete => "delete",
            MapOp::Lookup => "lookup",
            MapOp::Dump => "dump",
        }
    }
}

const MAPS: usize = CountedMap::ALL.len();
const OPS: usize = MapOp::ALL.len();

/// [map][op][0 = success, 1 = fail].
static COUNTS: [[[AtomicU64; 2]; OPS]; MAPS] =
    [const { [const { [const { AtomicU64::new(0) }; 2] }; OPS] }; MAPS];

/// Counts one operation.
pub fn record(map: CountedMap, op: MapOp, ok: bool) {
    COUNTS[map as usize][op as usize][usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
}

/// Counts the operation that produced `result` and passes it on. A missing
/// key is a success: lookups answer "absent" and removals are idempotent.
pub(crate) fn counted<T>(
    map: CountedMap,
    op: MapOp,
    result: Result<T, MapError>,
) -> Result<T, MapError> {
    let ok = matches!(result, Ok(_) | Err(MapError::KeyNotFound));
    record(map, op, ok);
    result
}

/// One series of `cilium_bpf_map_ops_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpCount {
    pub map: CountedMap,
    pub op: MapOp,
    pub success: u64,
    pub fail: u64,
}

/// Every (map, operation) that happened at least once, in a stable order.
pub fn snapshot() -> Vec<OpCount> {
    let mut out = Vec::new();
    for map in CountedMap::ALL {
        for op in MapOp::ALL {
            let [s, f] = &COUNTS[map as usize][op as usize];
            let (success, fail) = (s.load(Ordering::Relaxed), f.load(Ordering::Relaxed));
            if success + fail > 0 {
                out.push(OpCount {
                    map,
                    op,
                    success,
                    fail,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(map: CountedMap, op: MapOp) -> (u64, u64) {
        snapshot()
            .into_iter()
            .find(|c| c.map == map && c.op == op)
            .map_or((0, 0), |c| (c.success, c.fail))
    }

    #[test]
    fn outcomes_are_counted_per_map_and_operation() {
        // Other tests in this process may count too: compare differences.
        let before = get(CountedMap::LbReverseNat, MapOp::Delete);
        let _ = counted::<()>(CountedMap::LbReverseNat, MapOp::Delete, Ok(()));
        let _ = counted::<()>(
            CountedMap::LbReverseNat,
            MapOp::Delete,
            Err(MapError::KeyNotFound),
        );
        let _ = counted::<()>(
            CountedMap::LbReverseNat,
            MapOp::Delete,
            Err(MapError::ElementNotFound),
        );
        let after = get(CountedMap::LbReverseNat, MapOp::Delete);
        assert_eq!((after.0 - before.0, after.1 - before.1), (2, 1));
        assert_eq!(CountedMap::Policy.name(), "cilium_policy");
        assert_eq!(MapOp::Update.name(), "update");
    }
}
