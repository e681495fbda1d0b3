//! tc attachment through pinned TCX links: the pin keeps a program attached
//! while the agent is away, and a new program replaces the old one in the
//! same link atomically.

use std::path::Path;

use aya::programs::{
    links::{FdLink, PinnedLink},
    tc::SchedClassifierLink,
    SchedClassifier, TcAttachType,
};

use crate::{sys, DatapathError};

/// Attaches `prog` at `attach_type` of `ifname`, or swaps it into the link
/// already pinned at `pin`.
pub(crate) fn attach_pinned(
    prog: &mut SchedClassifier,
    name: &str,
    ifname: &str,
    attach_type: TcAttachType,
    pin: &Path,
) -> Result<(), DatapathError> {
    if pin.exists() {
        replace_program(prog, name, pin)
    } else {
        attach_new(prog, name, ifname, attach_type, pin)
    }
}

pub(crate) fn classifier<'a>(
    ebpf: &'a mut aya::Ebpf,
    name: &str,
) -> Result<&'a mut SchedClassifier, DatapathError> {
    ebpf.program_mut(name)
        .ok_or_else(|| DatapathError::Syscall(format!("no program {name}")))?
        .try_into()
        .map_err(|e| program_error(name, e))
}

/// Creates the bpffs directory links are pinned in.
pub(crate) fn create_pin_dir(dir: &Path) -> Result<(), DatapathError> {
    std::fs::create_dir_all(dir).map_err(|e| DatapathError::Bpffs {
        path: dir.to_path_buf(),
        source: e,
    })
}

fn attach_new(
    prog: &mut SchedClassifier,
    name: &str,
    ifname: &str,
    attach_type: TcAttachType,
    pin: &Path,
) -> Result<(), DatapathError> {
    if let Some(dir) = pin.parent() {
        create_pin_dir(dir)?;
    }
    let link_id = prog
        .attach(ifname, attach_type)
        .map_err(|e| DatapathError::Attach {
            program: name.into(),
            interface: ifname.into(),
            source: Box::new(e),
        })?;
    let link = prog
        .take_link(link_id)
        .map_err(|e| program_error(name, e))?;
    let fd_link = FdLink::try_from(link).map_err(|e| DatapathError::Pin {
        path: pin.to_path_buf(),
        source: Box::new(e),
    })?;
    fd_link.pin(pin).map_err(|e| DatapathError::Pin {
        path: pin.to_path_buf(),
        source: Box::new(e),
    })?;
    Ok(())
}

fn replace_program(
    prog: &mut SchedClassifier,
    name: &str,
    pin: &Path,
) -> Result<(), DatapathError> {
    let pin_err = |e: Box<dyn std::error::Error + Send + Sync>| DatapathError::Pin {
        path: pin.to_path_buf(),
        source: e,
    };
    let pinned = PinnedLink::from_pin(pin).map_err(|e| pin_err(Box::new(e)))?;
    let link =
        SchedClassifierLink::try_from(FdLink::from(pinned)).map_err(|e| pin_err(Box::new(e)))?;
    let id = prog
        .attach_to_link(link)
        .map_err(|e| program_error(name, e))?;
    // The pin keeps the link; our handle to it may go.
    let _ = prog.take_link(id);
    Ok(())
}

/// File descriptor of a loaded program (for BPF_PROG_TEST_RUN).
pub(crate) fn program_fd<'a>(
    ebpf: &'a aya::Ebpf,
    name: &str,
) -> Result<std::os::fd::BorrowedFd<'a>, DatapathError> {
    use std::os::fd::AsFd;
    let prog: &SchedClassifier = ebpf
        .program(name)
        .ok_or_else(|| DatapathError::Syscall(format!("no program {name}")))?
        .try_into()
        .map_err(|e| program_error(name, e))?;
    Ok(prog.fd().map_err(|e| program_error(name, e))?.as_fd())
}

pub(crate) fn program_error(name: &str, e: aya::programs::ProgramError) -> DatapathError {
    DatapathError::Program {
        program: name.into(),
        source: Box::new(e),
    }
}

/// Swaps `prog_fd` into the link pinned at `pin` (BPF_LINK_UPDATE), for
/// link types aya has no replace call for.
pub(crate) fn update_pinned(pin: &Path, prog_fd: std::os::fd::RawFd) -> Result<(), DatapathError> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(pin.as_os_str().as_bytes())
        .map_err(|_| DatapathError::Syscall(format!("bad pin path {}", pin.display())))?;
    #[repr(C)]
    #[derive(Default)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        _pad: u32,
    }
    let mut get = ObjGet {
        pathname: path.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: valid attr pointing at a NUL-terminated path.
    let link_fd = unsafe { sys::bpf(sys::BPF_OBJ_GET, &mut get) }
        .map_err(|e| DatapathError::Syscall(format!("BPF_OBJ_GET {}: {e}", pin.display())))?;
    #[repr(C)]
    #[derive(Default)]
    struct LinkUpdate {
        link_fd: u32,
        new_prog_fd: u32,
        flags: u32,
        old_prog_fd: u32,
    }
    let mut update = LinkUpdate {
        link_fd: link_fd as u32,
        new_prog_fd: prog_fd as u32,
        ..Default::default()
    };
    // SAFETY: valid attr; link_fd is ours and closed below.
    let updated = unsafe { sys::bpf(sys::BPF_LINK_UPDATE, &mut update) };
    // SAFETY: closing the fd BPF_OBJ_GET gave us.
    unsafe { libc::close(link_fd as i32) };
    updated
        .map(drop)
        .map_err(|e| DatapathError::Syscall(format!("BPF_LINK_UPDATE {}: {e}", pin.display())))
}

/// Removes a pinned link or program (detaching it); one already gone is fine.
pub(crate) fn remove_pin(path: &Path) -> Result<(), DatapathError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DatapathError::Bpffs {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}
