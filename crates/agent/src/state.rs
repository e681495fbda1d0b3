//! The agent's state directory: what it must remember across restarts.
//! Every file is replaced atomically, so a crash never leaves a torn one.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
};

use serde::{de::DeserializeOwned, Serialize};

use crate::{
    endpoint::EndpointRecord, ipam::Ipam, proxy::ports::ProxyPorts, services::ServiceRecord,
};

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

    fn services_dir(&self) -> PathBuf {
        self.dir.join("services")
    }

    pub fn load_services(&self) -> Result<Vec<ServiceRecord>, StateError> {
        let dir = self.services_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StateError::Io { path: dir, source }),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                out.extend(load::<ServiceRecord>(&path)?);
            }
        }
        out.sort_by_key(|s| s.id);
        Ok(out)
    }

    /// One file per service, renamed into place: a crash of the agent never
    /// tears it. Not synced to disk: services are cheap to re-add after a
    /// power loss, and syncing would dominate the cost of adding one.
    pub fn save_service(&self, svc: &ServiceRecord) -> Result<(), StateError> {
        let dir = self.services_dir();
        std::fs::create_dir_all(&dir).map_err(|source| StateError::Io {
            path: dir.clone(),
            source,
        })?;
        write(&dir.join(format!("{}.json", svc.id)), svc, false)
    }

    pub fn remove_service(&self, id: u16) -> Result<(), StateError> {
        let path = self.services_dir().join(format!("{id}.json"));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    pub fn load_proxy_ports(&self) -> Result<Option<ProxyPorts>, StateError> {
        load(&self.dir.join("proxy_ports.json"))
    }

    pub fn save_proxy_ports(&self, ports: &ProxyPorts) -> Result<(), StateError> {
        save(&self.dir.join("proxy_ports.json"), ports)
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
    write(path, value, true)
}

fn write<T: Serialize + ?Sized>(path: &Path, value: &T, sync: bool) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(value).expect("state is always serializable");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    if sync {
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}
