//! The node's overlay: bpf_overlay attached at tc ingress (decapsulated
//! packets to local endpoints) and tc egress (the node's own packets to
//! remote pods get their tunnel key) of the collect-metadata VXLAN device,
//! through pinned links.

use aya::programs::TcAttachType;

use crate::{
    links::{attach_pinned, classifier, program_error, remove_pin},
    object::BPF_OVERLAY,
    BpfRoot, DatapathError,
};

pub const FROM_OVERLAY: &str = "cil_from_overlay";
pub const TO_OVERLAY: &str = "cil_to_overlay";
const PROGRAMS: [(&str, TcAttachType); 2] = [
    (FROM_OVERLAY, TcAttachType::Ingress),
    (TO_OVERLAY, TcAttachType::Egress),
];

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
    let dir = root.dir().join("overlay");
    for (name, attach_type) in PROGRAMS {
        let prog = classifier(&mut ebpf, name)?;
        prog.load().map_err(|e| program_error(name, e))?;
        attach_pinned(prog, name, ifname, attach_type, &dir.join(name))?;
    }
    Ok(())
}

/// Detaches the overlay programs (the device is going away). Idempotent.
pub fn detach(root: &BpfRoot) -> Result<(), DatapathError> {
    for (name, _) in PROGRAMS {
        remove_pin(&root.dir().join("overlay").join(name))?;
    }
    Ok(())
}
