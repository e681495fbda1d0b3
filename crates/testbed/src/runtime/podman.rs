//! podman with the CNI network backend, on private configuration, storage
//! and run directories (`CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF`), so it
//! never sees or touches the node's own containers, images or networks.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

use crate::runtime::{cni, require_programs};
use crate::unique;

/// What the Makefile's setup installs for these tests.
pub const PACKAGES: &str = "podman containernetworking-plugins busybox-static runc";
/// Debian's reference plugins (podman wants them reachable, e.g. loopback).
const SYSTEM_PLUGIN_DIR: &str = "/usr/lib/cni";

/// A private podman. Dropping it removes every container and image it
/// made, then its directories.
pub struct Podman {
    root: PathBuf,
    conf: PathBuf,
    storage_conf: PathBuf,
    network_dir: PathBuf,
    plugin_dir: PathBuf,
}

impl Podman {
    /// Writes the configuration under a fresh temp directory and installs
    /// cilium-cni into its plugin directory.
    pub fn new() -> Result<Podman> {
        require_programs(&["podman", "runc", "conmon", "tar"], PACKAGES)?;
        let root = std::env::temp_dir().join(format!("cilium-podman-{}", unique::next_tag()));
        let podman = Podman {
            conf: root.join("containers.conf"),
            storage_conf: root.join("storage.conf"),
            network_dir: root.join("net.d"),
            plugin_dir: root.join("bin"),
            root,
        };
        fs::create_dir_all(&podman.network_dir)
            .with_context(|| format!("cannot create {}", podman.network_dir.display()))?;
        cni::install_plugin(&podman.plugin_dir)?;
        let r = podman.root.display();
        fs::write(
            &podman.conf,
            format!(
                r#"[containers]
default_ulimits = ["nofile=1024:20000", "nproc=4096:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{r}/tmp"
volume_path = "{r}/volumes"

[network]
network_backend = "cni"
cni_plugin_dirs = ["{}", "{SYSTEM_PLUGIN_DIR}"]
network_config_dir = "{}"
"#,
                podman.plugin_dir.display(),
                podman.network_dir.display()
            ),
        )?;
        fs::write(
            &podman.storage_conf,
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{r}/run\"\ngraphroot = \"{r}/storage\"\n"
            ),
        )?;
        Ok(podman)
    }

    /// Where conflists go (`network_config_dir`).
    pub fn network_dir(&self) -> &Path {
        &self.network_dir
    }

    /// `podman ARGS...` on this private configuration, ready to spawn.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", &self.conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .args(args);
        cmd
    }

    pub fn output(&self, args: &[&str]) -> Result<Output> {
        self.command(args)
            .output()
            .with_context(|| format!("cannot run `podman {}`", args.join(" ")))
    }

    /// Runs `podman ARGS...`, failing unless it exits 0; returns stdout
    /// trimmed.
    pub fn run_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.output(args)?;
        if !out.status.success() {
            bail!(
                "`podman {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `podman import TARBALL IMAGE`.
    pub fn import(&self, tarball: &Path, image: &str) -> Result<()> {
        self.run_ok(&["import", &tarball.display().to_string(), image])
            .map(|_| ())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // rm runs each container's CNI DEL: the agent must still be up.
        let _ = self.output(&["rm", "--all", "--force", "--time", "0"]);
        let _ = self.output(&["rmi", "--all", "--force"]);
        if fs::remove_dir_all(&self.root).is_err() {
            // Mounts podman left behind (a container's shm): unmount the
            // deepest first, then retry.
            let mut mounts = mounts_under(&self.root);
            mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in mounts {
                let _ = Command::new("umount").args(["-l", &m]).status();
            }
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// Mount points at or below `dir`, from /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}
