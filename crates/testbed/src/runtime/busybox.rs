//! A minimal container image: a root filesystem with the static busybox
//! and a link per applet, packed as a tarball that `podman import` (and
//! later `ctr`/`docker import`) accept. No registry is needed.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cmd;

/// Where Debian's busybox-static puts the binary.
const BUSYBOX: &str = "/bin/busybox";

/// A built root filesystem and its tarball.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub dir: PathBuf,
    pub tarball: PathBuf,
}

impl Rootfs {
    /// Builds `<work>/rootfs` and `<work>/rootfs.tar`; `files` are
    /// `(path inside the image, contents)`, e.g. `("www/index.html", "hi")`.
    pub fn build(work: &Path, files: &[(&str, &str)]) -> Result<Rootfs> {
        let busybox = Path::new(BUSYBOX);
        if !is_static(busybox)? {
            bail!("{BUSYBOX} is not the static busybox; `apt-get install -y busybox-static`");
        }
        let dir = work.join("rootfs");
        for sub in ["bin", "etc", "tmp", "proc", "sys", "dev", "root"] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
        }
        fs::copy(busybox, dir.join("bin/busybox"))
            .with_context(|| format!("cannot copy {BUSYBOX}"))?;
        let applets = cmd::run(BUSYBOX, &["--list"])?;
        for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
            if applet != "busybox" {
                symlink("busybox", dir.join("bin").join(applet))
                    .with_context(|| format!("cannot link applet {applet}"))?;
            }
        }
        fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
        fs::write(dir.join("etc/group"), "root:x:0:\n")?;
        for (path, contents) in files {
            let target = dir.join(path);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&target, contents)
                .with_context(|| format!("cannot write {}", target.display()))?;
        }
        let tarball = work.join("rootfs.tar");
        cmd::run(
            "tar",
            &[
                "-C",
                &dir.display().to_string(),
                "-cf",
                &tarball.display().to_string(),
                ".",
            ],
        )?;
        Ok(Rootfs { dir, tarball })
    }
}

/// The dynamic busybox would not run in an image without libc.
fn is_static(path: &Path) -> Result<bool> {
    if !path.is_file() {
        bail!(
            "{} not found; `apt-get install -y busybox-static`",
            path.display()
        );
    }
    let out = cmd::output("ldd", &[&path.display().to_string()])?;
    Ok(!out.status.success() || String::from_utf8_lossy(&out.stdout).contains("not a dynamic"))
}
