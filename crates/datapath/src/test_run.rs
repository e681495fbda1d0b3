//! BPF_PROG_TEST_RUN: runs a loaded program on a crafted packet in the
//! kernel, for fast datapath tests without network namespaces.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::DatapathError;

/// The `test` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The program's return code (TC_ACT_*).
    pub retval: u32,
    /// The packet as the program left it.
    pub packet: Vec<u8>,
}

pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;
pub const TC_ACT_REDIRECT: u32 = 7;

/// Size of `struct __sk_buff` and the offsets of its `mark` and `cb[0]`.
const SKB_CTX_SIZE: usize = 192;
const SKB_MARK_OFFSET: usize = 8;
const SKB_CB0_OFFSET: usize = 48;

pub fn run(prog: BorrowedFd<'_>, packet: &[u8]) -> Result<TestRunOutput, DatapathError> {
    run_with_mark(prog, packet, 0)
}

/// Runs with `skb->mark` preset, as an earlier program would leave it.
pub fn run_with_mark(
    prog: BorrowedFd<'_>,
    packet: &[u8],
    mark: u32,
) -> Result<TestRunOutput, DatapathError> {
    Ok(run_repeated(prog, packet, mark, 1)?.0)
}

/// Runs with `skb->mark` and `skb->cb[0]` preset, as a program tail-calling
/// this one would leave them.
pub fn run_tail_called(
    prog: BorrowedFd<'_>,
    packet: &[u8],
    mark: u32,
    cb0: u32,
) -> Result<TestRunOutput, DatapathError> {
    let mut ctx = skb_ctx(mark);
    ctx[SKB_CB0_OFFSET..SKB_CB0_OFFSET + 4].copy_from_slice(&cb0.to_ne_bytes());
    Ok(run_ctx(prog, packet, &ctx, 1)?.0)
}

/// Runs `repeat` times in the kernel (the packet starts afresh each time);
/// the last run's output and the kernel's mean time per run in ns.
pub fn run_repeated(
    prog: BorrowedFd<'_>,
    packet: &[u8],
    mark: u32,
    repeat: u32,
) -> Result<(TestRunOutput, u32), DatapathError> {
    run_ctx(prog, packet, &skb_ctx(mark), repeat)
}

fn skb_ctx(mark: u32) -> [u8; SKB_CTX_SIZE] {
    let mut ctx = [0u8; SKB_CTX_SIZE];
    ctx[SKB_MARK_OFFSET..SKB_MARK_OFFSET + 4].copy_from_slice(&mark.to_ne_bytes());
    ctx
}

fn run_ctx(
    prog: BorrowedFd<'_>,
    packet: &[u8],
    ctx: &[u8; SKB_CTX_SIZE],
    repeat: u32,
) -> Result<(TestRunOutput, u32), DatapathError> {
    let mut out = vec![0u8; packet.len() + 256];
    let mut attr = TestRunAttr {
        ctx_size_in: SKB_CTX_SIZE as u32,
        ctx_in: ctx.as_ptr() as u64,
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: packet.len() as u32,
        data_size_out: out.len() as u32,
        data_in: packet.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ..Default::default()
    };
    // SAFETY: attr points to valid buffers that outlive the call.
    unsafe { crate::sys::bpf(crate::sys::BPF_PROG_TEST_RUN, &mut attr) }
        .map_err(|e| DatapathError::Syscall(format!("BPF_PROG_TEST_RUN: {e}")))?;
    out.truncate(attr.data_size_out as usize);
    let output = TestRunOutput {
        retval: attr.retval,
        packet: out,
    };
    Ok((output, attr.duration))
}
