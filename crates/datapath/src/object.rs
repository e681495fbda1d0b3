//! The compiled eBPF objects, embedded so the agent is one self-contained binary.

/// Endpoint programs `cil_from_container` and `cil_to_container`.
pub static BPF_LXC: &[u8] = aligned_object!("bpf_lxc.o");

/// Overlay program `cil_from_overlay`.
pub static BPF_OVERLAY: &[u8] = aligned_object!("bpf_overlay.o");

/// Host device program `cil_from_netdev`.
pub static BPF_HOST: &[u8] = aligned_object!("bpf_host.o");

/// Socket load balancing: `cil_sock4_{connect,sendmsg,recvmsg,getpeername}`.
pub static BPF_SOCK: &[u8] = aligned_object!("bpf_sock.o");

/// ELF parsing wants 8-byte aligned data; `include_bytes!` guarantees 1.
macro_rules! aligned_object {
    ($name:literal) => {{
        #[repr(C, align(8))]
        struct Aligned<T: ?Sized>(T);
        static OBJ: &Aligned<[u8]> =
            &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/", $name)));
        &OBJ.0
    }};
}
use aligned_object;

/// A loader for our objects. They use no CO-RE relocations, so the kernel's
/// BTF (several MiB to parse) is not read for every endpoint's load. Maps
/// get the sizes in force (`maps::sizes`), whichever object creates them.
pub(crate) fn loader<'a>() -> aya::EbpfLoader<'a> {
    let mut loader = aya::EbpfLoader::new();
    loader.btf(None);
    crate::maps::sizes::apply(&mut loader);
    loader
}
