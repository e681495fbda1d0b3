//! `cilium_policy_<ep>`: one endpoint's policy (`struct policy_key` /
//! `struct policy_entry` in bpf/lib/maps.h).

use aya::maps::{HashMap, MapData};

use crate::{BpfRoot, DatapathError};

/// Zero in `sec_label`, `dport` or `protocol` is a wildcard.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKey {
    pub sec_label: u32,
    /// Network byte order.
    pub dport: u16,
    pub protocol: u8,
    /// 1 = egress, 0 = ingress.
    pub egress: u8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyEntry {
    /// Network byte order; 0 = no L7 redirect.
    pub proxy_port: u16,
    pub deny: u8,
    pub pad: [u8; 5],
    pub packets: u64,
    pub bytes: u64,
}

// SAFETY: plain #[repr(C)] data.
unsafe impl aya::Pod for PolicyKey {}
unsafe impl aya::Pod for PolicyEntry {}

impl PolicyKey {
    pub fn new(identity: u32, protocol: u8, dport: u16, egress: bool) -> Self {
        PolicyKey {
            sec_label: identity,
            dport: dport.to_be(),
            protocol,
            egress: egress as u8,
        }
    }

    pub fn dport_host(&self) -> u16 {
        u16::from_be(self.dport)
    }
}

impl PolicyEntry {
    pub fn verdict(deny: bool, proxy_port: u16) -> Self {
        PolicyEntry {
            proxy_port: proxy_port.to_be(),
            deny: deny as u8,
            ..Default::default()
        }
    }

    /// Same decision, whatever the counters say.
    pub fn same_verdict(&self, other: &PolicyEntry) -> bool {
        self.deny == other.deny && self.proxy_port == other.proxy_port
    }
}

pub struct PolicyMap {
    map: HashMap<MapData, PolicyKey, PolicyEntry>,
    name: String,
}

impl PolicyMap {
    /// Opens the pinned policy map of an endpoint whose program is loaded.
    pub fn open(root: &BpfRoot, endpoint_id: u16) -> Result<Self, DatapathError> {
        let path = root.policy_map(endpoint_id);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let map = super::open_pinned_path(&path, &name)?;
        let map = HashMap::try_from(map).map_err(|e| DatapathError::map(&name, e))?;
        Ok(PolicyMap { map, name })
    }

    pub fn entries(&self) -> Result<Vec<(PolicyKey, PolicyEntry)>, DatapathError> {
        self.map
            .iter()
            .map(|r| r.map_err(|e| DatapathError::map(&self.name, e)))
            .collect()
    }

    pub fn upsert(&mut self, key: PolicyKey, entry: PolicyEntry) -> Result<(), DatapathError> {
        self.map
            .insert(key, entry, 0)
            .map_err(|e| DatapathError::map(&self.name, e))
    }

    pub fn remove(&mut self, key: &PolicyKey) -> Result<(), DatapathError> {
        match self.map.remove(key) {
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => Ok(()),
            Err(e) => Err(DatapathError::map(&self.name, e)),
        }
    }

    /// Makes the kernel map hold exactly `desired`, touching only entries
    /// that differ so counters of unchanged entries survive. Additions come
    /// before removals: a key that stays allowed is never briefly missing.
    pub fn sync(
        &mut self,
        desired: &[(PolicyKey, PolicyEntry)],
    ) -> Result<SyncStats, DatapathError> {
        let current: std::collections::HashMap<PolicyKey, PolicyEntry> =
            self.entries()?.into_iter().collect();
        let mut stats = SyncStats::default();
        for (key, entry) in desired {
            match current.get(key) {
                Some(have) if have.same_verdict(entry) => {}
                _ => {
                    self.upsert(*key, *entry)?;
                    stats.upserted += 1;
                }
            }
        }
        let wanted: std::collections::HashSet<&PolicyKey> =
            desired.iter().map(|(k, _)| k).collect();
        for key in current.keys().filter(|k| !wanted.contains(k)) {
            self.remove(key)?;
            stats.removed += 1;
        }
        Ok(stats)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    pub upserted: usize,
    pub removed: usize,
}
