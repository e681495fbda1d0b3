//! Whole-map reads with BPF_MAP_LOOKUP_BATCH: a few thousand entries per
//! system call, where walking a hash map key by key costs two calls per
//! entry. The conntrack map is read whole by every GC sweep and fill-level
//! check, and holds hundreds of thousands of entries under churn. Writes of
//! many entries at once (BPF_MAP_UPDATE_BATCH, BPF_MAP_DELETE_BATCH): a big
//! CIDR policy puts tens of thousands of prefixes into the ipcache and of
//! entries into a policy map.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::sys;

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
    // Where the kernel resumes (a bucket index for hash maps); none at first.
    let mut resume: Option<u64> = None;
    let mut next = 0u64;
    loop {
        let mut keys: Vec<K> = Vec::with_capacity(chunk);
        let mut values: Vec<V> = Vec::with_capacity(chunk);
        let mut attr = BatchAttr {
            in_batch: resume.as_ref().map_or(0, |r| r as *const u64 as u64),
            out_batch: &mut next as *mut u64 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: the buffers hold `count` keys and values of the map's
        // sizes and outlive the call; the positions are 8 bytes, more than
        // the kernel's.
        let result = unsafe { sys::bpf(sys::BPF_MAP_LOOKUP_BATCH, &mut attr) };
        let got = (attr.count as usize).min(chunk);
        // SAFETY: the kernel wrote `got` plain-data keys and values.
        unsafe {
            keys.set_len(got);
            values.set_len(got);
        }
        out.extend(keys.into_iter().zip(values));
        match result {
            Ok(_) => resume = Some(next),
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT) => return Ok(out),
                // One bucket holds more entries than asked for.
                Some(libc::ENOSPC) if got == 0 => chunk *= 2,
                _ => return Err(e),
            },
        }
    }
}

/// Writes every (key, value) into the map `fd` (whose key and value sizes
/// must be those of `K` and `V`), a few thousand per system call, in order.
/// On an error, the entries before the one that failed are written.
pub(crate) fn update<K: aya::Pod, V: aya::Pod>(
    fd: BorrowedFd<'_>,
    entries: &[(K, V)],
) -> io::Result<()> {
    for chunk in entries.chunks(CHUNK) {
        let keys: Vec<K> = chunk.iter().map(|(k, _)| *k).collect();
        let values: Vec<V> = chunk.iter().map(|(_, v)| *v).collect();
        let mut attr = BatchAttr {
            keys: keys.as_ptr() as u64,
            values: values.as_ptr() as u64,
            count: chunk.len() as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: the buffers hold `count` keys and values of the map's
        // sizes and outlive the call; the kernel only reads them.
        unsafe { sys::bpf(sys::BPF_MAP_UPDATE_BATCH, &mut attr) }?;
    }
    Ok(())
}

/// Deletes every key from the map `fd` (whose key size must be that of
/// `K`), a few thousand per system call. A key already gone is an error.
pub(crate) fn delete<K: aya::Pod>(fd: BorrowedFd<'_>, keys: &[K]) -> io::Result<()> {
    for chunk in keys.chunks(CHUNK) {
        let mut attr = BatchAttr {
            keys: chunk.as_ptr() as u64,
            count: chunk.len() as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: the buffer holds `count` keys of the map's size and
        // outlives the call; the kernel only reads it.
        unsafe { sys::bpf(sys::BPF_MAP_DELETE_BATCH, &mut attr) }?;
    }
    Ok(())
}
