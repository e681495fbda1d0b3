//! Real container runtimes driven by tests (podman today; containerd and
//! dockerd later), on private temp directories, with a locally built
//! busybox image and cilium-cni as their network plugin. Each runtime
//! guard removes its containers, images and directories on drop.

pub mod busybox;
pub mod cni;
pub mod containerd;
pub mod daemon;
pub mod docker;
pub mod podman;

pub use busybox::Rootfs;
pub use cni::{CniNetwork, CNI_BIN_ENV};
pub use containerd::Containerd;
pub use docker::{DockerPlugin, Dockerd};
pub use podman::Podman;

use anyhow::{bail, Result};

/// Fails naming the apt packages that provide `programs` when any is
/// missing from `$PATH` (the Makefile's setup installs them).
pub fn require_programs(programs: &[&str], packages: &str) -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !std::env::split_paths(&path).any(|dir| dir.join(p).is_file()))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} not installed; run `make setup` or `apt-get install -y {packages}`",
            missing.join(", ")
        );
    }
    Ok(())
}
