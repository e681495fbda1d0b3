//! The bpf(2) system call, for the commands aya has no call for.

use std::io;

/// BPF command numbers (`enum bpf_cmd`).
pub(crate) const BPF_OBJ_GET: libc::c_long = 7;
pub(crate) const BPF_PROG_TEST_RUN: libc::c_long = 10;
pub(crate) const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
pub(crate) const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
pub(crate) const BPF_MAP_DELETE_BATCH: libc::c_long = 27;
pub(crate) const BPF_LINK_UPDATE: libc::c_long = 29;

/// Runs `cmd` with `attr`, its member of `union bpf_attr`; the call's
/// non-negative result (an fd for some commands), or the errno.
///
/// # Safety
/// `attr` must be the layout `cmd` expects, and every pointer in it valid
/// for what the kernel reads and writes through it during the call.
pub(crate) unsafe fn bpf<A>(cmd: libc::c_long, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: the caller vouches for attr (see above).
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut A, std::mem::size_of::<A>()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}
