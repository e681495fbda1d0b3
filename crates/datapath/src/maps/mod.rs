//! User-space access to the datapath's maps. Each submodule mirrors one
//! map's C structs from `bpf/lib/maps.h` and wraps the map with typed
//! operations.

mod batch;
pub mod ct;
pub mod ipcache;
pub mod ipcache6;
pub mod lb;
pub mod lxc;
pub mod metrics;
pub mod nat;
pub mod ops;
pub mod policy;
pub(crate) mod policy_resize;
pub mod sizes;

use aya::maps::MapData;

use crate::{object::BPF_LXC, BpfRoot, DatapathError};

pub use ct::{Ct6Key, CtEntry, CtKey, CtMap};
pub use ipcache::{IpcacheKey, IpcacheMap, RemoteEndpointInfo};
pub use ipcache6::{Ipcache6Key, Ipcache6Map};
pub use lb::{Backend, Frontend, LbMaps, ServiceEntry};
pub use lxc::{Endpoint6Key, EndpointInfo, EndpointKey, Lxc6Map, LxcMap};
pub use metrics::{MetricsKey, MetricsMap, MetricsValue};
pub use policy::{PolicyEntry, PolicyKey, PolicyMap};

pub const LXC_MAP: &str = "cilium_lxc";
pub const IPCACHE_MAP: &str = "cilium_ipcache";
pub const IPCACHE_HOST_MAP: &str = "cilium_ipcache_host";
pub const CT_MAP: &str = "cilium_ct4_global";
/// The IPv6 twins of the maps above.
pub const LXC6_MAP: &str = "cilium_lxc6";
pub const IPCACHE6_MAP: &str = "cilium_ipcache6";
pub const IPCACHE6_HOST_MAP: &str = "cilium_ipcache6_host";
pub const CT6_MAP: &str = "cilium_ct6_global";
/// What IPv6 first fragments showed of their L4 header (the datapath's own).
pub const FRAG6_MAP: &str = "cilium_ipv6_frag_datagrams";
pub const EVENTS_MAP: &str = "cilium_events";
pub const METRICS_MAP: &str = "cilium_metrics";
pub const POLICY_MAP: &str = "cilium_policy";
/// Each endpoint's policy program by endpoint id (the senders' tail call).
pub const CALL_POLICY_MAP: &str = "cilium_call_policy";

/// The maps every endpoint program shares, opened from their pins.
pub struct SharedMaps {
    pub lxc: LxcMap,
    pub ipcache: IpcacheMap,
    /// Endpoints' IPv6 addresses; the agent writes them next to `lxc`.
    pub lxc6: Lxc6Map,
    /// IPv6 prefixes' identities; the agent writes them next to `ipcache`.
    pub ipcache6: Ipcache6Map,
    /// Both families' connection tracking.
    pub ct: CtMap,
    pub metrics: MetricsMap,
    pub lb: LbMaps,
}

impl SharedMaps {
    /// Creates the shared maps under `root` unless they are already pinned
    /// there (an agent restart keeps them, and with them the live state).
    /// A pinned map of another size than asked for is kept, with a warning
    /// saying how to apply the new size.
    pub fn open_or_create(root: &BpfRoot) -> Result<Self, DatapathError> {
        metrics::remove_incompatible_pin(root);
        crate::object::loader()
            .default_map_pin_directory(root.dir())
            .load(BPF_LXC)
            .map_err(|e| DatapathError::Load {
                what: "shared maps".into(),
                source: Box::new(e),
            })?;
        for mismatch in sizes::check_shared_pins(root) {
            eprintln!("level=warning msg=\"{}\"", mismatch.explain(root));
        }
        Ok(SharedMaps {
            lxc: LxcMap::new(open_pinned(root, LXC_MAP)?)?,
            ipcache: IpcacheMap::new(
                open_pinned(root, IPCACHE_MAP)?,
                open_pinned(root, IPCACHE_HOST_MAP)?,
            )?,
            lxc6: Lxc6Map::new(open_pinned(root, LXC6_MAP)?)?,
            ipcache6: Ipcache6Map::new(
                open_pinned(root, IPCACHE6_MAP)?,
                open_pinned(root, IPCACHE6_HOST_MAP)?,
            )?,
            ct: CtMap::new(open_pinned(root, CT_MAP)?, open_pinned(root, CT6_MAP)?)?,
            metrics: MetricsMap::new(open_pinned(root, METRICS_MAP)?)?,
            lb: LbMaps::new(
                [
                    open_pinned(root, lb::SERVICES_MAP)?,
                    open_pinned(root, lb::BACKENDS_MAP)?,
                    open_pinned(root, lb::REVERSE_NAT_MAP)?,
                ],
                [
                    open_pinned(root, lb::SERVICES6_MAP)?,
                    open_pinned(root, lb::BACKENDS6_MAP)?,
                    open_pinned(root, lb::REVERSE_NAT6_MAP)?,
                ],
            )?,
        })
    }
}

pub(crate) fn open_pinned(root: &BpfRoot, name: &str) -> Result<aya::maps::Map, DatapathError> {
    open_pinned_path(&root.map(name), name)
}

pub(crate) fn open_pinned_path(
    path: &std::path::Path,
    name: &str,
) -> Result<aya::maps::Map, DatapathError> {
    let data = MapData::from_pin(path).map_err(|e| DatapathError::map(name, e))?;
    aya::maps::Map::from_map_data(data).map_err(|e| DatapathError::map(name, e))
}
