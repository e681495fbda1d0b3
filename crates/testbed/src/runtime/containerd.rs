//! containerd 1.6 with its CRI plugin on private root, state and sockets,
//! cilium-cni (and the reference `loopback` plugin CRI also calls) in its
//! CNI bin dir, a conflist pointing at a test agent, the `native`
//! snapshotter, and a locally built pause image (busybox `sleep`): no
//! registry is needed. Dropping it stops containerd and removes its tree.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cmd;
use crate::runtime::daemon::{remove_tree, Daemon};
use crate::runtime::{cni, require_programs, CniNetwork, Rootfs};
use crate::unique;

/// What the Makefile's setup installs for these tests.
pub const PACKAGES: &str = "containerd runc containernetworking-plugins busybox-static";
/// The pause image CRI runs for every sandbox.
pub const PAUSE_IMAGE: &str = "localhost/cilium-test-pause:1";
/// CRI's containerd namespace.
const CRI_NAMESPACE: &str = "k8s.io";
/// Debian's reference plugins (CRI sets up `lo` with `loopback`).
const SYSTEM_PLUGIN_DIR: &str = "/usr/lib/cni";

const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Containerd {
    root: PathBuf,
    socket: PathBuf,
    daemon: Option<Daemon>,
}

impl Containerd {
    /// Starts containerd whose CRI attaches sandboxes through cilium-cni
    /// to the agent at `agent_socket`, with the pause image imported.
    pub fn start(agent_socket: &Path) -> Result<Containerd> {
        require_programs(&["containerd", "ctr", "runc", "tar"], PACKAGES)?;
        let loopback = Path::new(SYSTEM_PLUGIN_DIR).join("loopback");
        if !loopback.is_file() {
            bail!(
                "{} not found; `apt-get install -y {PACKAGES}`",
                loopback.display()
            );
        }
        let tag = unique::next_tag();
        let root = std::env::temp_dir().join(format!("cilium-ctrd-{tag}"));
        let bin_dir = cni::install_plugin(&root.join("cni-bin"))?;
        fs::copy(&loopback, bin_dir.join("loopback"))
            .with_context(|| format!("cannot copy {}", loopback.display()))?;
        CniNetwork::new(&format!("cilium-{tag}"), agent_socket).write(&root.join("net.d"))?;
        let socket = root.join("containerd.sock");
        let config = root.join("config.toml");
        fs::write(&config, config_toml(&root, &socket))?;
        let args = vec!["--config".to_string(), config.display().to_string()];
        let mut daemon = Daemon::spawn("containerd", &args, &root.join("containerd.log"))?;
        let ctr = CtrCli {
            socket: socket.clone(),
        };
        daemon.wait_until(START_TIMEOUT, || {
            ctr.output(&["version"]).is_ok_and(|o| o.status.success())
        })?;
        let containerd = Containerd {
            root,
            socket,
            daemon: Some(daemon),
        };
        containerd.import_pause()?;
        Ok(containerd)
    }

    /// containerd's gRPC socket (CRI is served there too).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `ctr -a SOCK -n k8s.io ARGS...`, failing unless it exits 0.
    pub fn ctr_ok(&self, args: &[&str]) -> Result<String> {
        CtrCli {
            socket: self.socket.clone(),
        }
        .run_ok(args)
    }

    pub fn log_tail(&self) -> String {
        self.daemon
            .as_ref()
            .map(Daemon::log_tail)
            .unwrap_or_default()
    }

    fn import_pause(&self) -> Result<()> {
        let work = self.root.join("pause");
        let rootfs = Rootfs::build(&work, &[])?;
        let archive = oci_archive(
            &work,
            &rootfs.tarball,
            PAUSE_IMAGE,
            &["/bin/sleep", "2147483647"],
        )?;
        self.ctr_ok(&[
            "images",
            "import",
            "--snapshotter",
            "native",
            &archive.display().to_string(),
        ])
        .map(|_| ())
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.stop(Duration::from_secs(15));
        }
        remove_tree(&self.root);
    }
}

struct CtrCli {
    socket: PathBuf,
}

impl CtrCli {
    fn output(&self, args: &[&str]) -> Result<Output> {
        let socket = self.socket.display().to_string();
        let mut full = vec!["-a", socket.as_str(), "-n", CRI_NAMESPACE];
        full.extend_from_slice(args);
        cmd::output("ctr", &full)
    }

    fn run_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.output(args)?;
        if !out.status.success() {
            bail!(
                "`ctr {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// containerd's configuration (schema version 2): everything under `root`,
/// CRI with our CNI directories, no OOM score lowering (no
/// CAP_SYS_RESOURCE here), cgroupfs, the `native` snapshotter, streaming on
/// an ephemeral loopback port.
fn config_toml(root: &Path, socket: &Path) -> String {
    let r = root.display();
    let s = socket.display();
    format!(
        r#"version = 2
root = "{r}/root"
state = "{r}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{s}"

[ttrpc]
  address = "{s}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{r}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{r}/cni-bin"
    conf_dir = "{r}/net.d"
    max_conf_num = 1
"#
    )
}

/// Packs `layer` (an uncompressed rootfs tarball) as a one-layer OCI image
/// archive named `name` whose entrypoint is `entrypoint`, the format
/// `ctr images import` reads. Returns the archive's path.
pub fn oci_archive(work: &Path, layer: &Path, name: &str, entrypoint: &[&str]) -> Result<PathBuf> {
    let layout = work.join("oci");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).with_context(|| format!("cannot create {}", blobs.display()))?;
    let layer_bytes =
        fs::read(layer).with_context(|| format!("cannot read {}", layer.display()))?;
    let layer_digest = put_blob(&blobs, &layer_bytes)?;
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let config_bytes = serde_json::to_vec(&config)?;
    let config_digest = put_blob(&blobs, &config_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_bytes.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer_bytes.len(),
        }],
    });
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let manifest_digest = put_blob(&blobs, &manifest_bytes)?;
    let tag = name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_bytes.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let archive = work.join("image.oci.tar");
    cmd::run(
        "tar",
        &[
            "-C",
            &layout.display().to_string(),
            "-cf",
            &archive.display().to_string(),
            "oci-layout",
            "index.json",
            "blobs",
        ],
    )?;
    Ok(archive)
}

/// Writes `bytes` as a content-addressed blob; returns `sha256:<hex>`.
fn put_blob(dir: &Path, bytes: &[u8]) -> Result<String> {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fs::write(dir.join(&hex), bytes)
        .with_context(|| format!("cannot write blob {hex} in {}", dir.display()))?;
    Ok(format!("sha256:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_everything_under_the_root() {
        let c = config_toml(Path::new("/tmp/r"), Path::new("/tmp/r/c.sock"));
        assert!(c.contains(r#"root = "/tmp/r/root""#));
        assert!(c.contains(r#"address = "/tmp/r/c.sock""#));
        assert!(c.contains("restrict_oom_score_adj = true"));
        assert!(c.contains(r#"bin_dir = "/tmp/r/cni-bin""#));
        assert!(c.contains(PAUSE_IMAGE));
    }

    #[test]
    fn blobs_are_named_by_their_digest() {
        let dir = std::env::temp_dir().join(format!("cilium-blob-{}", unique::next_tag()));
        fs::create_dir_all(&dir).unwrap();
        let d = put_blob(&dir, b"abc").unwrap();
        assert_eq!(
            d,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(dir.join(&d[7..]).is_file());
        fs::remove_dir_all(&dir).unwrap();
    }
}
