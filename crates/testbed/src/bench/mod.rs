//! What the bench binaries (`cilium-bench-*`) share: their frame (flags,
//! signals, exit status, the results page), the machine description, CPU
//! and memory accounting from /proc, statistics over rounds, and the
//! baseline topology and traffic tools that more than one bench measures
//! with. What a bench measures and how its page reads stay in its binary.

pub mod agent_under_test;
pub mod entry;
pub mod flags;
pub mod machine;
pub mod measure;
pub mod plain_pod;
pub mod policy_import;
pub mod process_table;
pub mod procstat;
pub mod servers;
pub mod signals;
pub mod stats;
pub mod sysctl_override;
pub mod tools;

pub use flags::{Flag, Flags};
pub use machine::Machine;
pub use plain_pod::{PlainPod, PlainPod6};
pub use servers::ServerSet;
pub use sysctl_override::SysctlOverride;
