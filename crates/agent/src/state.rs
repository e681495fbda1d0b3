//! The agent's state directory: what it must remember across restarts.
//! Every file is replaced atomically, so a crash never leaves a torn one;
//! services, which change one at a time, are a journal that skips a torn tail.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

use kvstore::journal::Journal;

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
    Journal(#[from] kvstore::KvError),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
}

pub struct StateDir {
    dir: PathBuf,
    /// Services change one at a time and can be tens of thousands: a journal
    /// of changes, not a file per service.
    services: Mutex<Option<Journal>>,
}

impl StateDir {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StateError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| StateError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(StateDir {
            dir,
            services: Mutex::new(None),
        })
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

    /// The services journal, opened (and compacted) on first use.
    fn services(&self) -> Result<MutexGuard<'_, Option<Journal>>, StateError> {
        let mut journal = self.services.lock().unwrap_or_else(|p| p.into_inner());
        if journal.is_none() {
            let path = self.dir.join("services.journal");
            *journal = Some(Journal::open(&path)?);
        }
        Ok(journal)
    }

    pub fn load_services(&self) -> Result<Vec<ServiceRecord>, StateError> {
        let journal = self.services()?;
        let journal = journal.as_ref().expect("opened above");
        let mut out = journal
            .keys()
            .values()
            .map(|bytes| serde_json::from_slice::<ServiceRecord>(bytes))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| StateError::Corrupt {
                path: journal.path().to_path_buf(),
                source,
            })?;
        out.sort_by_key(|s| s.id);
        Ok(out)
    }

    /// One appended line per change, however many services there are.
    pub fn save_service(&self, svc: &ServiceRecord) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(svc).expect("services always serialize");
        self.change_service(svc.id, Some(bytes))
    }

    pub fn remove_service(&self, id: u16) -> Result<(), StateError> {
        self.change_service(id, None)
    }

    fn change_service(&self, id: u16, record: Option<Vec<u8>>) -> Result<(), StateError> {
        let mut journal = self.services()?;
        let journal = journal.as_mut().expect("opened above");
        Ok(journal.apply(vec![(id.to_string(), record)], 0)?)
    }

    pub fn load_proxy_ports(&self) -> Result<Option<ProxyPorts>, StateError> {
        load(&self.dir.join("proxy_ports.json"))
    }

    pub fn save_proxy_ports(&self, ports: &ProxyPorts) -> Result<(), StateError> {
        save(&self.dir.join("proxy_ports.json"), ports)
    }

    /// What endpoints learned from DNS, so FQDN policy holds across a
    /// restart.
    pub fn load_fqdn_cache(&self) -> Result<Option<crate::fqdn::FqdnCache>, StateError> {
        load(&self.dir.join("fqdn_cache.json"))
    }

    pub fn save_fqdn_cache(&self, cache: &crate::fqdn::FqdnCache) -> Result<(), StateError> {
        save(&self.dir.join("fqdn_cache.json"), cache)
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

/// Temp file, fsync, rename.
fn save<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(value).expect("state is always serializable");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
