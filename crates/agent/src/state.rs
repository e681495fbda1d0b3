//! The agent's state directory: what it must remember across restarts.
//! Every file is replaced atomically, so a crash never leaves a torn one.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
};

use serde::{de::DeserializeOwned, Serialize};

use crate::{endpoint::EndpointRecord, ipam::Ipam};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
}

pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StateError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| StateError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(StateDir { dir })
    }

    pub fn identities_path(&self) -> PathBuf {
        self.dir.join("identities.json")
    }

    pub fn cidr_identities_path(&self) -> PathBuf {
        self.dir.join("cidr_identities.json")
    }

    pub fn load_endpoints(&self) -> Result<BTreeMap<u16, EndpointRecord>, StateError> {
        Ok(
            load::<Vec<EndpointRecord>>(&self.dir.join("endpoints.json"))?
                .unwrap_or_default()
                .into_iter()
                .map(|ep| (ep.id, ep))
                .collect(),
        )
    }

    pub fn save_endpoints(&self, eps: &BTreeMap<u16, EndpointRecord>) -> Result<(), StateError> {
        save(
            &self.dir.join("endpoints.json"),
            &eps.values().collect::<Vec<_>>(),
        )
    }

    pub fn load_policy(&self) -> Result<Option<policy::Repository>, StateError> {
        load(&self.dir.join("policy.json"))
    }

    pub fn save_policy(&self, repo: &policy::Repository) -> Result<(), StateError> {
        save(&self.dir.join("policy.json"), repo)
    }

    pub fn load_ipam(&self) -> Result<Option<Ipam>, StateError> {
        load(&self.dir.join("ipam.json"))
    }

    pub fn save_ipam(&self, ipam: &Ipam) -> Result<(), StateError> {
        save(&self.dir.join("ipam.json"), ipam)
    }
}

fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn save<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).expect("state is always serializable");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
