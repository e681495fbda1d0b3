//! Rebuilding an endpoint's pinned policy map at a new `--bpf-policy-map-max`.
//!
//! aya reuses a pinned map whatever its size, so when the sizes differ the
//! endpoint's programs are loaded against a new map pinned aside (bpffs
//! renames no pins); the old map's entries are copied into it, and it
//! then takes the old one's pin, all before the new programs are attached.
//! The programs still attached keep the old map until the atomic swap, so
//! no packet sees an empty policy. A map holding more entries than the new
//! size keeps its size, with a warning: shrinking it would lose policy.

use std::path::{Path, PathBuf};

use aya::maps::{MapData, MapInfo};

use super::{sizes, PolicyEntry, PolicyKey, PolicyMap};
use crate::DatapathError;

/// A rebuild under way: the new map's pin and what goes into it.
pub(crate) struct PolicyResize {
    pub(crate) aside: PathBuf,
    entries: Vec<(PolicyKey, PolicyEntry)>,
    from: u32,
    to: u32,
}

fn name_of(pin: &Path) -> String {
    pin.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Where the new map is pinned while it is filled. Not an endpoint pin
/// name, so `pinned_endpoints` ignores it (and bpffs allows no dots).
pub(crate) fn aside(pin: &Path) -> PathBuf {
    pin.with_file_name(format!("resizing_{}", name_of(pin)))
}

fn bpffs_error(path: &Path, source: std::io::Error) -> DatapathError {
    DatapathError::Bpffs {
        path: path.to_path_buf(),
        source,
    }
}

fn remove_if_there(path: &Path) -> Result<(), DatapathError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(bpffs_error(path, e)),
    }
}

/// Before the load: whether the map pinned at `pin` must be rebuilt (its
/// size is not the one in force and its entries fit the new size).
pub(crate) fn prepare(pin: &Path) -> Result<Option<PolicyResize>, DatapathError> {
    let aside = aside(pin);
    // Left by a rebuild that was cut short: never in use.
    remove_if_there(&aside)?;
    let wanted = sizes::current().policy;
    let Ok(info) = MapInfo::from_pin(pin) else {
        return Ok(None);
    };
    let pinned = info.max_entries();
    if pinned == wanted {
        return Ok(None);
    }
    let entries = PolicyMap::open_path(pin)?.entries()?;
    if entries.len() > wanted as usize {
        eprintln!(
            "level=warning msg=\"BPF map {} holds {} entries, more than {}={wanted}: it keeps its size of {pinned} entries\"",
            name_of(pin),
            entries.len(),
            sizes::FLAG_POLICY
        );
        return Ok(None);
    }
    Ok(Some(PolicyResize {
        aside,
        entries,
        from: pinned,
        to: wanted,
    }))
}

impl PolicyResize {
    /// After the load against the map pinned at `self.aside`: fills it and
    /// moves it to `pin`. On failure the old map stays where it was.
    pub(crate) fn finish(
        self,
        loaded: Result<aya::Ebpf, DatapathError>,
        pin: &Path,
    ) -> Result<aya::Ebpf, DatapathError> {
        let result = loaded.and_then(|ebpf| {
            let mut map = PolicyMap::open_path(&self.aside)?;
            for (key, entry) in &self.entries {
                map.upsert(*key, *entry)?;
            }
            Ok(ebpf)
        });
        let ebpf = match result {
            Ok(ebpf) => ebpf,
            Err(e) => {
                let _ = remove_if_there(&self.aside);
                return Err(e);
            }
        };
        let name = name_of(pin);
        let new = MapData::from_pin(&self.aside).map_err(|e| DatapathError::map(&name, e))?;
        remove_if_there(pin)?;
        new.pin(pin).map_err(|e| DatapathError::Pin {
            path: pin.to_path_buf(),
            source: Box::new(e),
        })?;
        remove_if_there(&self.aside)?;
        eprintln!(
            "level=info msg=\"BPF map {name} rebuilt with {} entries (was {}), {} entries copied\"",
            self.to,
            self.from,
            self.entries.len()
        );
        Ok(ebpf)
    }
}
