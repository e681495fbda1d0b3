//! cilium-cni as a runtime's network plugin: a private plugin directory
//! holding the binary, and conflists pointing it at a test agent's socket.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use crate::agent::find_binary;

/// Environment variable overriding where `cilium-cni` is found.
pub const CNI_BIN_ENV: &str = "CILIUM_CNI_BIN";

/// The plugin binary's name, also the conflist's plugin `type`.
pub const PLUGIN_TYPE: &str = "cilium-cni";

/// Copies `cilium-cni` into `dir` (created), returns `dir`.
pub fn install_plugin(dir: &Path) -> Result<PathBuf> {
    let bin = find_binary(PLUGIN_TYPE, CNI_BIN_ENV)?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::copy(&bin, dir.join(PLUGIN_TYPE))
        .with_context(|| format!("cannot copy {} to {}", bin.display(), dir.display()))?;
    Ok(dir.to_path_buf())
}

/// One cilium network: a conflist named after it.
#[derive(Debug, Clone)]
pub struct CniNetwork {
    pub name: String,
    pub cni_version: String,
    pub socket: PathBuf,
    /// `args.cni.labels`: every container on this network carries them.
    pub labels: Vec<(String, String)>,
}

impl CniNetwork {
    pub fn new(name: &str, socket: &Path) -> CniNetwork {
        CniNetwork {
            name: name.to_string(),
            cni_version: "1.0.0".to_string(),
            socket: socket.to_path_buf(),
            labels: Vec::new(),
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> CniNetwork {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }

    /// The conflist JSON.
    pub fn conflist(&self) -> serde_json::Value {
        let labels: Vec<_> = self
            .labels
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "plugins": [{
                "type": PLUGIN_TYPE,
                "cilium-socket": self.socket.display().to_string(),
                "args": {"cni": {"labels": labels}},
            }]
        })
    }

    /// Writes `<dir>/<name>.conflist`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{}.conflist", self.name));
        fs::write(&path, serde_json::to_vec_pretty(&self.conflist())?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_names_plugin_socket_and_labels() {
        let c = CniNetwork::new("net1", Path::new("/run/x.sock"))
            .label("app", "web")
            .conflist();
        assert_eq!(c["name"], "net1");
        assert_eq!(c["plugins"][0]["type"], "cilium-cni");
        assert_eq!(c["plugins"][0]["cilium-socket"], "/run/x.sock");
        assert_eq!(c["plugins"][0]["args"]["cni"]["labels"][0]["value"], "web");
    }
}
