//! Whole-map reads with BPF_MAP_LOOKUP_BATCH: a few thousand entries per
//! system call, where walking a hash map key by key costs two calls per
//! entry. The conntrack map is read whole by every GC sweep and fill-level
//! check, and holds hundreds of thousands of entries under churn.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries asked for per call; grown when one hash bucket holds more.
const CHUNK: usize = 4096;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every (key, value) of the hash map `fd`, whose key and value sizes must
/// be those of `K` and `V`. Entries changing meanwhile may be seen in their
/// old or new state, as with a key-by-key walk.
pub(crate) fn dump<K: aya::Pod, V: aya::Pod>(fd: BorrowedFd<'_>) -> io::Result<Vec<(K, V)>> {
    let mut out = Vec::new();
    let mut chunk = CHUNK;
    // The kernel's resume position (a bucket index for hash maps).
    let (mut token, mut next) = (0u64, 0u64);
    let mut first = true;
    loop {
        let mut keys: Vec<K> = Vec::with_capacity(chunk);
        let mut values: Vec<V> = Vec::with_capacity(chunk);
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                &token as *const u64 as u64
            },
            out_batch: &mut next as *mut u64 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: the buffers hold `count` keys and values of the map's
        // sizes and outlive the call; the tokens are 8 bytes, more than the
        // kernel's.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>(),
            )
        };
        let err = (rc < 0).then(io::Error::last_os_error);
        let got = (attr.count as usize).min(chunk);
        // SAFETY: the kernel wrote `got` plain-data keys and values.
        unsafe {
            keys.set_len(got);
            values.set_len(got);
        }
        out.extend(keys.into_iter().zip(values));
        match err.as_ref().and_then(io::Error::raw_os_error) {
            None => {}
            Some(libc::ENOENT) => return Ok(out),
            // One bucket holds more entries than asked for.
            Some(libc::ENOSPC) if got == 0 => {
                chunk *= 2;
                continue;
            }
            Some(_) => return Err(err.unwrap_or_else(io::Error::last_os_error)),
        }
        token = next;
        first = false;
    }
}
