//! A host sysctl set for the length of a run (`net.ipv4.ip_forward` for
//! routed plain pods, `kernel.bpf_stats_enabled` for a profiling pass); the
//! previous value comes back on drop.

use std::path::PathBuf;

use anyhow::{Context, Result};

pub struct SysctlOverride {
    path: PathBuf,
    previous: String,
}

impl SysctlOverride {
    /// Sets `key` (dotted, as `sysctl` names it) to `value` in the host
    /// namespace.
    pub fn set(key: &str, value: &str) -> Result<SysctlOverride> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        let previous = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .trim()
            .to_string();
        std::fs::write(&path, value).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(SysctlOverride { path, previous })
    }
}

impl Drop for SysctlOverride {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(&self.path, &self.previous) {
            eprintln!(
                "cannot restore {} to {}: {e}",
                self.path.display(),
                self.previous
            );
        }
    }
}
