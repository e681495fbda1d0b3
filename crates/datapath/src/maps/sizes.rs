//! How many entries the resizable maps get (`max_entries` set at load time,
//! overriding bpf/lib/maps.h), and what to do about a map already pinned
//! with another size.
//!
//! The sizes are set once per process ([`configure`], from the agent's
//! flags) before anything is loaded: every object load then asks for the
//! same sizes. aya reuses a pinned map whatever its size, so a size change
//! reaches a pinned shared map only when that map is created anew (its pin
//! removed, state lost); [`check_shared_pins`] says so loudly. Endpoint
//! policy maps are rebuilt at the new size when the endpoint's programs are
//! next loaded (`endpoint.rs`), since their content can always be copied.

use std::sync::OnceLock;

use aya::maps::MapInfo;

use crate::BpfRoot;

/// Sizes in bpf/lib/maps.h, the defaults of the agent's flags.
pub const DEFAULT_CT_MAX: u32 = 262_144;
pub const DEFAULT_POLICY_MAX: u32 = 16_384;
pub const DEFAULT_LB_MAX: u32 = 262_144;
pub const DEFAULT_SOCK_REV_MAX: u32 = 262_144;
/// `cilium_lb4_reverse_nat` is keyed by a 16-bit index.
const REVERSE_NAT_LIMIT: u32 = 65_536;

/// The object's name of the per-endpoint policy map (pinned per endpoint).
pub const POLICY_MAP_OBJECT: &str = super::POLICY_MAP;
pub const REVERSE_SK_MAP: &str = "cilium_lb4_reverse_sk";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSizes {
    /// `cilium_ct4_global` and `cilium_ct6_global`: TCP and other
    /// protocols share each.
    pub ct: u32,
    /// Each endpoint's `cilium_policy_NNNNN`.
    pub policy: u32,
    /// Service slots and backends; the reverse-NAT map too, up to 65536.
    pub lb: u32,
    /// `cilium_lb4_reverse_sk` (socket LB's reply translation).
    pub sock_rev: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        MapSizes {
            ct: DEFAULT_CT_MAX,
            policy: DEFAULT_POLICY_MAX,
            lb: DEFAULT_LB_MAX,
            sock_rev: DEFAULT_SOCK_REV_MAX,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("{flag}={value}: a map needs at least one entry")]
    Zero { flag: &'static str, value: u32 },
    #[error("map sizes were already set to {0:?} in this process")]
    AlreadySet(MapSizes),
}

/// Which flag sets which map, for validation and for the pressure hints.
pub const FLAG_CT: &str = "--bpf-ct-global-tcp-max/--bpf-ct-global-any-max";
pub const FLAG_POLICY: &str = "--bpf-policy-map-max";
pub const FLAG_LB: &str = "--bpf-lb-map-max";
pub const FLAG_SOCK_REV: &str = "--bpf-sock-rev-map-max";

impl MapSizes {
    /// `(object map name, size)` for every map these sizes cover.
    pub fn by_map(&self) -> [(&'static str, u32); 11] {
        [
            (super::CT_MAP, self.ct),
            (super::CT6_MAP, self.ct),
            (POLICY_MAP_OBJECT, self.policy),
            (super::lb::SERVICES_MAP, self.lb),
            (super::lb::BACKENDS_MAP, self.lb),
            (super::lb::REVERSE_NAT_MAP, self.lb.min(REVERSE_NAT_LIMIT)),
            (super::lb::SERVICES6_MAP, self.lb),
            (super::lb::BACKENDS6_MAP, self.lb),
            (super::lb::REVERSE_NAT6_MAP, self.lb.min(REVERSE_NAT_LIMIT)),
            (REVERSE_SK_MAP, self.sock_rev),
            (super::lb::REVERSE_SK6_MAP, self.sock_rev),
        ]
    }

    fn validate(&self) -> Result<(), SizeError> {
        for (flag, value) in [
            (FLAG_CT, self.ct),
            (FLAG_POLICY, self.policy),
            (FLAG_LB, self.lb),
            (FLAG_SOCK_REV, self.sock_rev),
        ] {
            if value == 0 {
                return Err(SizeError::Zero { flag, value });
            }
        }
        Ok(())
    }
}

static CONFIGURED: OnceLock<MapSizes> = OnceLock::new();

/// Sets the sizes for this process, before the first load. Setting the
/// same sizes again is fine; other sizes are an error (loaded maps would
/// disagree).
pub fn configure(sizes: MapSizes) -> Result<(), SizeError> {
    sizes.validate()?;
    let set = CONFIGURED.get_or_init(|| sizes);
    if *set != sizes {
        return Err(SizeError::AlreadySet(*set));
    }
    Ok(())
}

/// The sizes in force: configured, else bpf/lib/maps.h's.
pub fn current() -> MapSizes {
    CONFIGURED.get().copied().unwrap_or_default()
}

/// The size wanted for a map, by its pinned name (`cilium_policy_00012`
/// counts as the policy map); `None` for maps without a size flag.
pub fn wanted(pinned_name: &str) -> Option<u32> {
    let name = if pinned_name.starts_with("cilium_policy_") {
        POLICY_MAP_OBJECT
    } else {
        pinned_name
    };
    current()
        .by_map()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, size)| size)
}

/// The flag that resizes a map, by its pinned name.
pub fn flag_of(pinned_name: &str) -> Option<&'static str> {
    if pinned_name.starts_with("cilium_policy_") {
        return Some(FLAG_POLICY);
    }
    match pinned_name {
        super::CT_MAP | super::CT6_MAP => Some(FLAG_CT),
        super::lb::SERVICES_MAP
        | super::lb::BACKENDS_MAP
        | super::lb::REVERSE_NAT_MAP
        | super::lb::SERVICES6_MAP
        | super::lb::BACKENDS6_MAP
        | super::lb::REVERSE_NAT6_MAP => Some(FLAG_LB),
        REVERSE_SK_MAP | super::lb::REVERSE_SK6_MAP => Some(FLAG_SOCK_REV),
        _ => None,
    }
}

/// Applies the sizes in force to a loader.
pub(crate) fn apply(loader: &mut aya::EbpfLoader<'_>) {
    for (name, size) in current().by_map() {
        loader.map_max_entries(name, size);
    }
}

/// The kernel's `max_entries` of a map pinned under `root` by that name.
pub fn pinned_max_entries(root: &BpfRoot, pinned_name: &str) -> Option<u32> {
    MapInfo::from_pin(root.map(pinned_name))
        .ok()
        .map(|info| info.max_entries())
}

/// A pinned map whose size is not the one asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeMismatch {
    pub map: String,
    pub pinned: u32,
    pub wanted: u32,
    pub flag: &'static str,
}

impl SizeMismatch {
    /// What to tell the operator: the size in force, the one asked for, and
    /// how to get it.
    pub fn explain(&self, root: &BpfRoot) -> String {
        let asked = if self.flag == FLAG_CT {
            format!(
                "--bpf-ct-global-tcp-max + --bpf-ct-global-any-max = {}",
                self.wanted
            )
        } else {
            format!("{}={}", self.flag, self.wanted)
        };
        if self.flag == FLAG_POLICY {
            return format!(
                "BPF map {} has {} entries: {asked} applies when the endpoint's programs are next loaded (agent restart), if its entries fit",
                self.map, self.pinned
            );
        }
        format!(
            "BPF map {} keeps its pinned size of {} entries: {asked} applies after the pinned map is recreated (remove {} and restart the agent; its entries are lost)",
            self.map,
            self.pinned,
            root.map(&self.map).display()
        )
    }
}

/// The pinned map `pinned_name`, if its size differs from the one asked for.
pub fn mismatch(root: &BpfRoot, pinned_name: &str) -> Option<SizeMismatch> {
    let wanted = wanted(pinned_name)?;
    let pinned = pinned_max_entries(root, pinned_name)?;
    (pinned != wanted).then(|| SizeMismatch {
        map: pinned_name.to_string(),
        pinned,
        wanted,
        flag: flag_of(pinned_name).unwrap_or("its size flag"),
    })
}

/// The shared maps pinned with another size than asked for. They are kept
/// (recreating one would drop the state every attached program relies on).
pub fn check_shared_pins(root: &BpfRoot) -> Vec<SizeMismatch> {
    current()
        .by_map()
        .into_iter()
        .filter(|(name, _)| *name != POLICY_MAP_OBJECT)
        .filter_map(|(name, _)| mismatch(root, name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_sizes_and_flags() {
        let sizes = MapSizes {
            ct: 10,
            policy: 20,
            lb: 100_000,
            sock_rev: 40,
        };
        let by_map = sizes.by_map();
        assert!(by_map.contains(&(super::super::CT_MAP, 10)));
        assert!(by_map.contains(&(super::super::lb::REVERSE_NAT_MAP, 65_536)));
        assert_eq!(flag_of("cilium_policy_00012"), Some("--bpf-policy-map-max"));
        assert_eq!(flag_of(super::super::lb::BACKENDS_MAP), Some(FLAG_LB));
        assert_eq!(flag_of(super::super::LXC_MAP), None);
        assert_eq!(wanted("cilium_policy_00001"), Some(current().policy));
        assert_eq!(wanted(super::super::IPCACHE_MAP), None);
        let zero = MapSizes {
            policy: 0,
            ..MapSizes::default()
        };
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "--bpf-policy-map-max=0: a map needs at least one entry"
        );
    }
}
