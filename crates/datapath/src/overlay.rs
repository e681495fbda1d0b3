//! The node's overlay: bpf_overlay attached at tc ingress of the
//! collect-metadata VXLAN device, through a pinned link.

use aya::programs::TcAttachType;

use crate::{
    links::{attach_pinned, classifier, program_error},
    object::BPF_OVERLAY,
    BpfRoot, DatapathError,
};

pub const FROM_OVERLAY: &str = "cil_from_overlay";

/// Loads bpf_overlay against the shared maps and attaches it to `ifname`
/// (replacing the program of a previous agent in place).
pub fn attach(root: &BpfRoot, ifname: &str) -> Result<(), DatapathError> {
    let mut ebpf = crate::object::loader()
        .default_map_pin_directory(root.dir())
        .load(BPF_OVERLAY)
        .map_err(|e| DatapathError::Load {
            what: "overlay".into(),
            source: Box::new(e),
        })?;
    let prog = classifier(&mut ebpf, FROM_OVERLAY)?;
    prog.load().map_err(|e| program_error(FROM_OVERLAY, e))?;
    let dir = root.dir().join("overlay");
    std::fs::create_dir_all(&dir).map_err(|e| DatapathError::Bpffs {
        path: dir.clone(),
        source: e,
    })?;
    attach_pinned(
        prog,
        FROM_OVERLAY,
        ifname,
        TcAttachType::Ingress,
        &dir.join(FROM_OVERLAY),
    )
}

/// Detaches the overlay program (the device is going away). Idempotent.
pub fn detach(root: &BpfRoot) -> Result<(), DatapathError> {
    let pin = root.dir().join("overlay").join(FROM_OVERLAY);
    match std::fs::remove_file(&pin) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DatapathError::Bpffs {
            path: pin,
            source: e,
        }),
    }
}
