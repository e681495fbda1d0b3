//! `cilium_policy_<ep>`: one endpoint's policy (`struct policy_key` /
//! `struct policy_entry` in bpf/lib/maps.h).

use std::os::fd::AsFd;

use aya::maps::{lpm_trie::Key, IterableMap, LpmTrie, MapData};

use super::batch;
use super::ops::{counted, CountedMap::Policy, MapOp};
use crate::{BpfRoot, DatapathError};

/// Bits of the key matched exactly whatever the entry: identity + direction.
pub const PREFIX_L3: u32 = 40;
/// Every bit: identity, direction, protocol and the whole port.
pub const PREFIX_FULL: u32 = 64;

/// An LPM key: identity 0 is any peer; protocol 0 (a prefix that stops
/// before the protocol) is any protocol; a port prefix covers a range.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKey {
    pub prefixlen: u32,
    pub sec_label: u32,
    /// 1 = egress, 0 = ingress.
    pub egress: u8,
    pub protocol: u8,
    /// Network byte order; ICMP: the message type.
    pub dport: u16,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyEntry {
    /// Network byte order; 0 = no L7 redirect.
    pub proxy_port: u16,
    pub deny: u8,
    pub lpm_prefix_length: u8,
    pub pad: [u8; 4],
    pub packets: u64,
    pub bytes: u64,
}

/// The LPM data after the prefix length, which aya's `Key` carries.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct PolicyKeyData {
    sec_label: u32,
    egress: u8,
    protocol: u8,
    dport: u16,
}

// SAFETY: plain #[repr(C)] data.
unsafe impl aya::Pod for PolicyKeyData {}
unsafe impl aya::Pod for PolicyEntry {}

impl PolicyKey {
    /// `protocol` 0 means any protocol (the port is then ignored);
    /// `port_prefix_len` is how many leading bits of `dport` count (0..=16).
    pub fn new(identity: u32, protocol: u8, dport: u16, port_prefix_len: u8, egress: bool) -> Self {
        let (prefixlen, dport) = if protocol == 0 {
            (PREFIX_L3, 0)
        } else {
            let bits = port_prefix_len.min(16) as u32;
            let mask = if bits == 0 {
                0
            } else {
                u16::MAX << (16 - bits)
            };
            (PREFIX_L3 + 8 + bits, dport & mask)
        };
        PolicyKey {
            prefixlen,
            sec_label: identity,
            egress: egress as u8,
            protocol,
            dport: dport.to_be(),
        }
    }

    pub fn dport_host(&self) -> u16 {
        u16::from_be(self.dport)
    }

    /// How many leading bits of the port count; None when any protocol.
    pub fn port_prefix_len(&self) -> Option<u8> {
        (self.prefixlen > PREFIX_L3).then(|| (self.prefixlen - PREFIX_L3 - 8) as u8)
    }

    fn lpm(&self) -> Key<PolicyKeyData> {
        Key::new(
            self.prefixlen,
            PolicyKeyData {
                sec_label: self.sec_label,
                egress: self.egress,
                protocol: self.protocol,
                dport: self.dport,
            },
        )
    }

    fn from_lpm(key: &Key<PolicyKeyData>) -> Self {
        let d = key.data();
        PolicyKey {
            prefixlen: key.prefix_len(),
            sec_label: d.sec_label,
            egress: d.egress,
            protocol: d.protocol,
            dport: d.dport,
        }
    }
}

impl PolicyEntry {
    pub fn verdict(key: &PolicyKey, deny: bool, proxy_port: u16) -> Self {
        PolicyEntry {
            proxy_port: proxy_port.to_be(),
            deny: deny as u8,
            lpm_prefix_length: key.prefixlen as u8,
            ..Default::default()
        }
    }

    /// Same decision, whatever the counters say.
    pub fn same_verdict(&self, other: &PolicyEntry) -> bool {
        self.deny == other.deny
            && self.proxy_port == other.proxy_port
            && self.lpm_prefix_length == other.lpm_prefix_length
    }
}

pub struct PolicyMap {
    map: LpmTrie<MapData, PolicyKeyData, PolicyEntry>,
    name: String,
}

impl PolicyMap {
    /// Opens the pinned policy map of an endpoint whose program is loaded.
    pub fn open(root: &BpfRoot, endpoint_id: u16) -> Result<Self, DatapathError> {
        Self::open_path(&root.policy_map(endpoint_id))
    }

    /// Opens a policy map pinned at `path`, named after its file.
    pub(crate) fn open_path(path: &std::path::Path) -> Result<Self, DatapathError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let map = super::open_pinned_path(path, &name)?;
        let map = LpmTrie::try_from(map).map_err(|e| DatapathError::map(&name, e))?;
        Ok(PolicyMap { map, name })
    }

    pub fn entries(&self) -> Result<Vec<(PolicyKey, PolicyEntry)>, DatapathError> {
        let all: Result<Vec<_>, DatapathError> = self
            .map
            .iter()
            .map(|r| {
                r.map(|(k, v)| (PolicyKey::from_lpm(&k), v))
                    .map_err(|e| DatapathError::map(&self.name, e))
            })
            .collect();
        super::ops::record(Policy, MapOp::Dump, all.is_ok());
        all
    }

    pub fn upsert(&mut self, key: PolicyKey, entry: PolicyEntry) -> Result<(), DatapathError> {
        counted(Policy, MapOp::Update, self.map.insert(&key.lpm(), entry, 0))
            .map_err(|e| DatapathError::map(&self.name, e))
    }

    pub fn remove(&mut self, key: &PolicyKey) -> Result<(), DatapathError> {
        match counted(Policy, MapOp::Delete, self.map.remove(&key.lpm())) {
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
        let upserts: Vec<_> = desired
            .iter()
            .filter(|(key, entry)| {
                !current
                    .get(key)
                    .is_some_and(|have| have.same_verdict(entry))
            })
            .map(|(key, entry)| (key.lpm(), *entry))
            .collect();
        let wanted: std::collections::HashSet<&PolicyKey> =
            desired.iter().map(|(k, _)| k).collect();
        let removals: Vec<_> = current
            .keys()
            .filter(|k| !wanted.contains(k))
            .map(PolicyKey::lpm)
            .collect();
        // Thousands of entries per system call: a big CIDR policy is one
        // entry per prefix.
        let fd = self.map.map().fd().as_fd();
        let counted = |op, result: std::io::Result<()>| {
            super::ops::record(Policy, op, result.is_ok());
            result.map_err(|e| DatapathError::Syscall(format!("writing {}: {e}", self.name)))
        };
        if !upserts.is_empty() {
            counted(MapOp::Update, batch::update(fd, &upserts))?;
        }
        if !removals.is_empty() {
            counted(MapOp::Delete, batch::delete(fd, &removals))?;
        }
        Ok(SyncStats {
            upserted: upserts.len(),
            removed: removals.len(),
        })
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    pub upserted: usize,
    pub removed: usize,
}
