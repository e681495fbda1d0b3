//! Socket-level load balancing: bpf_sock attached to a cgroup v2 through
//! pinned links, so that connect()/sendmsg() to a VIP reach a backend
//! without per-packet NAT.

use std::{
    os::fd::{AsFd, AsRawFd},
    path::Path,
};

use aya::programs::{links::FdLink, CgroupAttachMode, CgroupSockAddr};

use crate::{
    links::{program_error, remove_pin},
    object::BPF_SOCK,
    BpfRoot, DatapathError,
};

const PROGRAMS: [&str; 8] = [
    "cil_sock4_connect",
    "cil_sock4_sendmsg",
    "cil_sock4_recvmsg",
    "cil_sock4_getpeername",
    "cil_sock6_connect",
    "cil_sock6_sendmsg",
    "cil_sock6_recvmsg",
    "cil_sock6_getpeername",
];

/// Attaches the socket LB programs to the cgroup at `cgroup` (and all
/// below it). Links pinned by a previous agent get the new programs in
/// place.
pub fn attach(root: &BpfRoot, cgroup: &Path) -> Result<(), DatapathError> {
    let mut ebpf = crate::object::loader()
        .default_map_pin_directory(root.dir())
        .load(BPF_SOCK)
        .map_err(|e| DatapathError::Load {
            what: "socket LB".into(),
            source: Box::new(e),
        })?;
    let cgroup_fd = std::fs::File::open(cgroup).map_err(|e| DatapathError::Bpffs {
        path: cgroup.to_path_buf(),
        source: e,
    })?;
    let dir = root.dir().join("socklb");
    crate::links::create_pin_dir(&dir)?;
    for name in PROGRAMS {
        let prog: &mut CgroupSockAddr = ebpf
            .program_mut(name)
            .ok_or_else(|| DatapathError::Syscall(format!("no program {name} in bpf_sock")))?
            .try_into()
            .map_err(|e| program_error(name, e))?;
        prog.load().map_err(|e| program_error(name, e))?;
        let pin = dir.join(name);
        if pin.exists() {
            let fd = prog.fd().map_err(|e| program_error(name, e))?;
            crate::links::update_pinned(&pin, fd.as_fd().as_raw_fd())?;
            continue;
        }
        // A cgroup link always coexists with other programs; the kernel
        // rejects attach flags on link creation, so the mode is the default.
        let id = prog
            .attach(&cgroup_fd, CgroupAttachMode::Single)
            .map_err(|e| program_error(name, e))?;
        let link = FdLink::try_from(prog.take_link(id).map_err(|e| program_error(name, e))?)
            .map_err(|e| DatapathError::Pin {
                path: pin.clone(),
                source: Box::new(e),
            })?;
        link.pin(&pin).map_err(|e| DatapathError::Pin {
            path: pin.clone(),
            source: Box::new(e),
        })?;
    }
    Ok(())
}

/// Detaches socket LB (removes the pins). Idempotent.
pub fn detach(root: &BpfRoot) -> Result<(), DatapathError> {
    let dir = root.dir().join("socklb");
    for name in PROGRAMS {
        remove_pin(&dir.join(name))?;
    }
    Ok(())
}
