use std::path::PathBuf;

/// What went wrong talking to the kernel, with the object it concerned.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("bpf filesystem at {path}: {source}")]
    Bpffs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("loading eBPF object for {what}: {source}")]
    Load {
        what: String,
        source: Box<aya::EbpfError>,
    },
    #[error("program {program}: {source}")]
    Program {
        program: String,
        source: Box<aya::programs::ProgramError>,
    },
    #[error("attaching {program} to interface {interface}: {source}")]
    Attach {
        program: String,
        interface: String,
        source: Box<aya::programs::ProgramError>,
    },
    #[error("pinning {path}: {source}")]
    Pin {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("map {map}: {source}")]
    Map {
        map: String,
        source: Box<aya::maps::MapError>,
    },
    #[error("map {0} is missing from the object")]
    MissingMap(String),
    #[error("{0}")]
    Syscall(String),
}

impl DatapathError {
    pub(crate) fn map(map: impl Into<String>, source: aya::maps::MapError) -> Self {
        DatapathError::Map {
            map: map.into(),
            source: Box::new(source),
        }
    }
}
