//! Makes one family's cilium_ipcache and cilium_lxc maps hold exactly what
//! the agent wants, writing only the entries that differ. Both families
//! share this one pass; the maps differ only in their address type.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use datapath::maps::{EndpointInfo, Ipcache6Map, IpcacheMap, Lxc6Map, LxcMap, RemoteEndpointInfo};
use datapath::DatapathError;

/// A family's ipcache: (address, prefix length) → identity and tunnel.
pub(super) trait PrefixMap {
    type Addr: Ord + Copy;
    fn entries(&self) -> Result<Vec<(Self::Addr, u32, RemoteEndpointInfo)>, DatapathError>;
    fn remove(&mut self, ip: Self::Addr, prefix: u32) -> Result<(), DatapathError>;
    fn upsert(
        &mut self,
        ip: Self::Addr,
        prefix: u32,
        id: u32,
        tunnel: Ipv4Addr,
    ) -> Result<(), DatapathError>;
}

/// A family's lxc map: local endpoint address → its programs' info.
pub(super) trait EndpointMap {
    type Addr: Ord + Copy;
    fn entries(&self) -> Result<Vec<(Self::Addr, EndpointInfo)>, DatapathError>;
    fn remove(&mut self, ip: Self::Addr) -> Result<(), DatapathError>;
    fn upsert(&mut self, ip: Self::Addr, info: &EndpointInfo) -> Result<(), DatapathError>;
}

macro_rules! family_maps {
    ($ipcache:ty, $lxc:ty, $addr:ty) => {
        impl PrefixMap for $ipcache {
            type Addr = $addr;
            fn entries(&self) -> Result<Vec<($addr, u32, RemoteEndpointInfo)>, DatapathError> {
                <$ipcache>::entries(self)
            }
            fn remove(&mut self, ip: $addr, prefix: u32) -> Result<(), DatapathError> {
                <$ipcache>::remove(self, ip, prefix)
            }
            fn upsert(
                &mut self,
                ip: $addr,
                prefix: u32,
                id: u32,
                tunnel: Ipv4Addr,
            ) -> Result<(), DatapathError> {
                <$ipcache>::upsert(self, ip, prefix, id, tunnel)
            }
        }

        impl EndpointMap for $lxc {
            type Addr = $addr;
            fn entries(&self) -> Result<Vec<($addr, EndpointInfo)>, DatapathError> {
                <$lxc>::entries(self)
            }
            fn remove(&mut self, ip: $addr) -> Result<(), DatapathError> {
                <$lxc>::remove(self, ip)
            }
            fn upsert(&mut self, ip: $addr, info: &EndpointInfo) -> Result<(), DatapathError> {
                <$lxc>::upsert(self, ip, info)
            }
        }
    };
}

family_maps!(IpcacheMap, LxcMap, Ipv4Addr);
family_maps!(Ipcache6Map, Lxc6Map, Ipv6Addr);

/// Brings `ipcache` and `lxc` to `want_ipcache` and `want_lxc`: stale
/// entries go, missing or different ones are written, equal ones stay.
pub(super) fn sync<A: Ord + Copy>(
    ipcache: &mut impl PrefixMap<Addr = A>,
    lxc: &mut impl EndpointMap<Addr = A>,
    mut want_ipcache: BTreeMap<(A, u32), (u32, Ipv4Addr)>,
    want_lxc: BTreeMap<A, EndpointInfo>,
) -> Result<(), DatapathError> {
    for (ip, prefix, info) in ipcache.entries()? {
        match want_ipcache.get(&(ip, prefix)) {
            None => ipcache.remove(ip, prefix)?,
            Some((id, tunnel))
                if *id == info.sec_identity && tunnel.octets() == info.tunnel_endpoint =>
            {
                want_ipcache.remove(&(ip, prefix));
            }
            Some(_) => {}
        }
    }
    for ((ip, prefix), (id, tunnel)) in want_ipcache {
        ipcache.upsert(ip, prefix, id, tunnel)?;
    }
    for (ip, _) in lxc.entries()? {
        if !want_lxc.contains_key(&ip) {
            lxc.remove(ip)?;
        }
    }
    for (ip, info) in want_lxc {
        lxc.upsert(ip, &info)?;
    }
    Ok(())
}
