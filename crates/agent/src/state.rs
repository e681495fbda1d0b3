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
    endpoint::EndpointRecord, fqdn::FqdnCache, ipam::Ipam, proxy::ports::ProxyPorts,
    services::ServiceRecord,
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
    /// The FQDN cache: a key per endpoint and name, so a name learned is
    /// one appended line, saved before its answer reaches the pod.
    fqdn: Mutex<Option<Journal>>,
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
            fqdn: Mutex::new(None),
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
    /// The FQDN cache journal, opened (and compacted) on first use.
    fn fqdn(&self) -> Result<MutexGuard<'_, Option<Journal>>, StateError> {
        let mut journal = self.fqdn.lock().unwrap_or_else(|p| p.into_inner());
        if journal.is_none() {
            *journal = Some(Journal::open(&self.dir.join("fqdn_cache.journal"))?);
        }
        Ok(journal)
    }

    pub fn load_fqdn_cache(&self) -> Result<FqdnCache, StateError> {
        let mut journal = self.fqdn()?;
        let journal = journal.as_mut().expect("opened above");
        let mut cache = FqdnCache::default();
        for (key, bytes) in journal.keys() {
            let corrupt = |source| StateError::Corrupt {
                path: journal.path().to_path_buf(),
                source,
            };
            let (endpoint, name) = fqdn_key_parts(key)
                .ok_or_else(|| corrupt(serde::de::Error::custom(format!("bad key {key:?}"))))?;
            let ips = serde_json::from_slice(bytes).map_err(corrupt)?;
            cache.restore_name(endpoint, name.to_string(), ips);
        }
        // What an agent before the journal saved, whole.
        let old = self.dir.join("fqdn_cache.json");
        if let Some(saved) = load::<FqdnCache>(&old)? {
            if cache.names().next().is_none() {
                cache = saved;
                let changes = fqdn_changes(&cache, journal.keys());
                journal.apply(changes, 0)?;
            }
            std::fs::remove_file(&old).map_err(|source| StateError::Io { path: old, source })?;
        }
        Ok(cache)
    }

    /// Saves what `cache` holds for `names` (appended: no rewrite, no sync).
    pub fn save_fqdn_names<'a>(
        &self,
        cache: &FqdnCache,
        names: impl IntoIterator<Item = (u16, &'a str)>,
    ) -> Result<(), StateError> {
        let changes = names
            .into_iter()
            .map(|(endpoint, name)| {
                let ips = cache.name(endpoint, name).filter(|ips| !ips.is_empty());
                (fqdn_key(endpoint, name), ips.map(to_json))
            })
            .collect();
        let mut journal = self.fqdn()?;
        Ok(journal.as_mut().expect("opened above").apply(changes, 0)?)
    }

    /// Saves every name of `cache` that differs from what was saved.
    pub fn save_fqdn_cache(&self, cache: &FqdnCache) -> Result<(), StateError> {
        let mut journal = self.fqdn()?;
        let journal = journal.as_mut().expect("opened above");
        let changes = fqdn_changes(cache, journal.keys());
        if changes.is_empty() {
            return Ok(());
        }
        Ok(journal.apply(changes, 0)?)
    }

    pub fn load_ipam(&self) -> Result<Option<Ipam>, StateError> {
        load(&self.dir.join("ipam.json"))
    }

    pub fn save_ipam(&self, ipam: &Ipam) -> Result<(), StateError> {
        save(&self.dir.join("ipam.json"), ipam)
    }

    pub fn load_ipam6(&self) -> Result<Option<crate::ipam::v6::Ipam6>, StateError> {
        load(&self.dir.join("ipam6.json"))
    }

    pub fn save_ipam6(&self, ipam: &crate::ipam::v6::Ipam6) -> Result<(), StateError> {
        save(&self.dir.join("ipam6.json"), ipam)
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

fn to_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("state is always serializable")
}

fn fqdn_key(endpoint: u16, name: &str) -> String {
    format!("{endpoint}/{name}")
}

fn fqdn_key_parts(key: &str) -> Option<(u16, &str)> {
    let (endpoint, name) = key.split_once('/')?;
    Some((endpoint.parse().ok()?, name))
}

/// The journal changes that make `saved` what `cache` holds.
fn fqdn_changes(
    cache: &FqdnCache,
    saved: &BTreeMap<String, Vec<u8>>,
) -> Vec<kvstore::journal::Change> {
    let mut changes = Vec::new();
    let mut current = std::collections::BTreeSet::new();
    for (endpoint, name, ips) in cache.names() {
        let key = fqdn_key(endpoint, name);
        let bytes = to_json(ips);
        if saved.get(&key) != Some(&bytes) {
            changes.push((key.clone(), Some(bytes)));
        }
        current.insert(key);
    }
    changes.extend(
        saved
            .keys()
            .filter(|key| !current.contains(*key))
            .map(|key| (key.clone(), None)),
    );
    changes
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fqdn::Limits;
    use std::net::Ipv4Addr;

    const LIMITS: Limits = Limits {
        min_ttl: 0,
        max_ips_per_name: 10,
    };

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_fqdn_cache_survives_as_appended_names_and_saved_differences() {
        let dir = temp_dir("fqdn");
        let ip = |last| std::net::IpAddr::from(Ipv4Addr::new(192, 0, 2, last));
        let mut cache = FqdnCache::default();
        {
            let state = StateDir::open(&dir).unwrap();
            assert_eq!(state.load_fqdn_cache().unwrap(), FqdnCache::default());
            cache.record(1, "a.test", &[ip(1)], 60, 100, LIMITS);
            cache.record(2, "b.test", &[ip(2), ip(3)], 60, 100, LIMITS);
            state
                .save_fqdn_names(&cache, [(1, "a.test"), (2, "b.test")])
                .unwrap();
            // A refresh and a name gone, saved by difference.
            cache.record(1, "a.test", &[ip(1)], 60, 130, LIMITS);
            cache.forget_endpoint(2);
            state.save_fqdn_cache(&cache).unwrap();
        }
        let state = StateDir::open(&dir).unwrap();
        assert_eq!(state.load_fqdn_cache().unwrap(), cache);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_whole_fqdn_cache_file_of_an_earlier_agent_is_taken_over() {
        let dir = temp_dir("fqdn-old");
        std::fs::create_dir_all(&dir).unwrap();
        let mut cache = FqdnCache::default();
        cache.record(
            3,
            "c.test",
            &[Ipv4Addr::new(192, 0, 2, 9).into()],
            60,
            100,
            LIMITS,
        );
        save(&dir.join("fqdn_cache.json"), &cache).unwrap();
        assert_eq!(
            StateDir::open(&dir).unwrap().load_fqdn_cache().unwrap(),
            cache
        );
        assert!(!dir.join("fqdn_cache.json").exists());
        assert_eq!(
            StateDir::open(&dir).unwrap().load_fqdn_cache().unwrap(),
            cache
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
