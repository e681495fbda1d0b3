//! The eBPF datapath as seen from user space: the compiled programs, Rust
//! mirrors of their map structs, loading and attaching per endpoint, typed
//! map access and the event reader.
//!
//! This is the only crate that touches the kernel's BPF. It knows nothing of
//! policy or labels: callers hand it numbers (identities, ports, ifindexes)
//! and it programs maps and attaches programs.

pub mod abi;
pub mod bpffs;
pub mod endpoint;
pub mod error;
pub mod events;
pub mod host;
mod links;
pub mod maps;
pub mod object;
pub mod overlay;
pub mod sock;
mod sys;
pub mod test_run;

pub use bpffs::BpfRoot;
pub use endpoint::{EndpointConfig, EndpointProgram};
pub use error::DatapathError;
pub use events::{Event, EventKind, EventReader, RingEvent};
pub use maps::SharedMaps;
