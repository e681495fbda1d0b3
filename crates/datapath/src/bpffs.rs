//! Where the datapath pins its maps and links, and making sure bpffs is there.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use crate::DatapathError;

const BPF_FS_MAGIC: libc::c_long = 0xcafe4a11;

/// The agent's `--bpf-root`: a directory on bpffs holding every pin.
#[derive(Debug, Clone)]
pub struct BpfRoot {
    dir: PathBuf,
}

impl BpfRoot {
    /// Mounts bpffs on `/sys/fs/bpf` if needed and creates `dir` on it.
    pub fn prepare(dir: impl Into<PathBuf>) -> Result<Self, DatapathError> {
        let dir = dir.into();
        let err = |path: &Path, source| DatapathError::Bpffs {
            path: path.to_path_buf(),
            source,
        };
        let sys_bpf = Path::new("/sys/fs/bpf");
        if dir.starts_with(sys_bpf) && !is_bpffs(sys_bpf) {
            mount_bpffs(sys_bpf).map_err(|e| err(sys_bpf, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| err(&dir, e))?;
        if !is_bpffs(&dir) {
            return Err(err(
                &dir,
                std::io::Error::other("not on a bpf filesystem (mount -t bpf bpf DIR)"),
            ));
        }
        std::fs::create_dir_all(dir.join("endpoints")).map_err(|e| err(&dir, e))?;
        Ok(BpfRoot { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A shared map, pinned by its name.
    pub fn map(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The policy map of one endpoint, named as in Cilium.
    pub fn policy_map(&self, endpoint_id: u16) -> PathBuf {
        self.dir.join(format!("cilium_policy_{endpoint_id:05}"))
    }

    /// Pinned tc links of one endpoint: they keep programs attached while
    /// the agent restarts.
    pub fn endpoint_links(&self, endpoint_id: u16) -> PathBuf {
        self.dir.join("endpoints").join(endpoint_id.to_string())
    }
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a valid out pointer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as libc::c_long == BPF_FS_MAGIC
}

fn mount_bpffs(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    let target = CString::new(path.as_os_str().as_bytes())?;
    let kind = CString::new("bpf").unwrap();
    // SAFETY: all pointers are valid NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            kind.as_ptr(),
            target.as_ptr(),
            kind.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
