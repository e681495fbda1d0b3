//! The daemon: owns every piece of node state behind one lock and keeps the
//! datapath in line with it. Subsystems compute desired state; the kernel
//! maps are brought to it by diff, so a restart can always resync.

mod endpoints;
mod maps_view;
mod policy_ops;
mod regenerate;

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    sync::{Arc, Mutex, MutexGuard},
};

use datapath::{BpfRoot, SharedMaps};
use identity::IdentityAllocator;
use policy::Repository;

use crate::{
    config::Config,
    endpoint::EndpointRecord,
    error::AgentError,
    ipam::{Cidr, Ipam},
    netdev,
    state::StateDir,
};

pub struct Daemon {
    config: Config,
    root: BpfRoot,
    state: StateDir,
    inner: Mutex<Inner>,
}

struct Inner {
    maps: SharedMaps,
    ipam: Ipam,
    identities: IdentityAllocator,
    repo: Repository,
    endpoints: BTreeMap<u16, EndpointRecord>,
}

impl Daemon {
    /// Opens (or creates) the datapath and the state dir, restores what a
    /// previous run left and resyncs the kernel with it.
    pub fn start(config: Config) -> anyhow::Result<Arc<Daemon>> {
        let range = Cidr::parse(&config.ipv4_range)?;
        let root = BpfRoot::prepare(&config.bpf_root)?;
        let state = StateDir::open(&config.state_dir)?;
        let maps = SharedMaps::open_or_create(&root)?;
        let identities = IdentityAllocator::load(state.identities_path())?;
        let repo = state.load_policy()?.unwrap_or_default();
        let ipam = match state.load_ipam()? {
            Some(ipam) if ipam.range() == range => ipam,
            Some(ipam) if ipam.allocated().next().is_some() => anyhow::bail!(
                "--ipv4-range {range} differs from {} recorded in {} with addresses in use",
                ipam.range(),
                config.state_dir.display()
            ),
            _ => Ipam::new(range),
        };
        let endpoints = state.load_endpoints()?;
        let daemon = Arc::new(Daemon {
            config,
            root,
            state,
            inner: Mutex::new(Inner {
                maps,
                ipam,
                identities,
                repo,
                endpoints,
            }),
        });
        daemon.restore()?;
        Ok(daemon)
    }

    pub fn bpf_root(&self) -> &BpfRoot {
        &self.root
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-attaches restored endpoints (atomically replacing the programs
    /// still running from the previous incarnation), drops endpoints whose
    /// interface vanished meanwhile, and resyncs every map.
    fn restore(&self) -> anyhow::Result<()> {
        let mut inner = self.lock();
        let ids: Vec<u16> = inner.endpoints.keys().copied().collect();
        for id in ids {
            let ep = inner.endpoints[&id].clone();
            let gone = netdev::ifindex(&ep.interface_name) != Some(ep.interface_index);
            if gone {
                eprintln!(
                    "endpoint {id}: interface {} is gone, removing",
                    ep.interface_name
                );
                inner.endpoints.remove(&id);
                let _ = datapath::endpoint::remove_endpoint(&self.root, id);
                let _ = inner.identities.release(ep.identity);
                continue;
            }
            let mut prog = datapath::EndpointProgram::load(&self.root, id)?;
            prog.attach(&self.root, &ep.interface_name)?;
        }
        // A crash between attaching and persisting leaves pins nobody owns.
        for id in datapath::endpoint::pinned_endpoints(&self.root) {
            if !inner.endpoints.contains_key(&id) {
                eprintln!("endpoint {id}: pinned but unknown to the state dir, removing");
                datapath::endpoint::remove_endpoint(&self.root, id)?;
            }
        }
        self.sync_endpoint_maps(&mut inner)?;
        self.regenerate_all(&mut inner)?;
        self.persist(&inner)?;
        Ok(())
    }

    /// Makes cilium_lxc and cilium_ipcache hold exactly the local endpoints,
    /// the host's own addresses and the world default.
    fn sync_endpoint_maps(&self, inner: &mut Inner) -> Result<(), AgentError> {
        let mut want_ipcache: BTreeMap<(Ipv4Addr, u32), u32> = BTreeMap::new();
        want_ipcache.insert((Ipv4Addr::UNSPECIFIED, 0), identity::WORLD);
        for ip in netdev::host_addresses() {
            want_ipcache.insert((ip, 32), identity::HOST);
        }
        let mut want_lxc = BTreeMap::new();
        for ep in inner.endpoints.values() {
            want_ipcache.insert((ep.ipv4, 32), ep.identity);
            want_lxc.insert(ep.ipv4, endpoints::lxc_info(ep));
        }
        for (ip, prefix, info) in inner.maps.ipcache.entries()? {
            if !want_ipcache.contains_key(&(ip, prefix)) {
                inner.maps.ipcache.remove(ip, prefix)?;
            } else if want_ipcache[&(ip, prefix)] == info.sec_identity {
                want_ipcache.remove(&(ip, prefix));
            }
        }
        for ((ip, prefix), id) in want_ipcache {
            inner
                .maps
                .ipcache
                .upsert(ip, prefix, id, Ipv4Addr::UNSPECIFIED)?;
        }
        for (ip, _) in inner.maps.lxc.entries()? {
            if !want_lxc.contains_key(&ip) {
                inner.maps.lxc.remove(ip)?;
            }
        }
        for (ip, info) in want_lxc {
            inner.maps.lxc.upsert(ip, &info)?;
        }
        Ok(())
    }

    fn regenerate_all(&self, inner: &mut Inner) -> Result<(), AgentError> {
        let identities = inner.identities.all_labels();
        let Inner {
            repo, endpoints, ..
        } = inner;
        let mut failed = Vec::new();
        for ep in endpoints.values_mut() {
            if let Err(e) = regenerate::regenerate(&self.root, repo, &identities, ep) {
                failed.push(format!("endpoint {}: {e}", ep.id));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(AgentError::Internal(failed.join("; ")))
        }
    }

    fn persist(&self, inner: &Inner) -> Result<(), AgentError> {
        self.state.save_endpoints(&inner.endpoints)?;
        self.state.save_policy(&inner.repo)?;
        self.state.save_ipam(&inner.ipam)?;
        inner.identities.save(self.state.identities_path())?;
        Ok(())
    }

    /// Deletes expired connection-tracking entries.
    pub fn ct_gc(&self) -> Result<usize, AgentError> {
        Ok(self.lock().maps.ct.gc()?)
    }

    pub fn status(&self) -> api::models::StatusResponse {
        use api::models::*;
        let inner = self.lock();
        let ok = |msg: &str| Status {
            state: "Ok".into(),
            msg: msg.into(),
        };
        StatusResponse {
            cilium: ok(""),
            kvstore: ok("embedded"),
            ipam: IpamStatus {
                ipv4: inner
                    .ipam
                    .allocated()
                    .map(|(ip, _)| ip.to_string())
                    .collect(),
                alloc_range: inner.ipam.range().to_string(),
                capacity: inner.ipam.capacity(),
            },
            policy: PolicyStatus {
                revision: inner.repo.revision(),
                rules: inner.repo.rules().len() as u32,
            },
            endpoints: inner.endpoints.len() as u32,
        }
    }

    pub fn daemon_config(&self) -> api::models::DaemonConfiguration {
        use api::models::*;
        let range = self.lock().ipam.range();
        DaemonConfiguration {
            status: DaemonConfigurationStatus {
                addressing: NodeAddressing {
                    ipv4: NodeAddressingElement {
                        enabled: true,
                        ip: range.router().to_string(),
                        alloc_range: range.to_string(),
                    },
                },
                kvstore: self.config.kvstore.clone(),
                bpf_root: self.config.bpf_root.display().to_string(),
                state_dir: self.config.state_dir.display().to_string(),
                node_name: self.config.node_name(),
            },
        }
    }

    pub fn ipam_allocate(&self, owner: &str) -> Result<api::models::IpamResponse, AgentError> {
        use api::models::*;
        let mut inner = self.lock();
        let ip = inner
            .ipam
            .allocate_next(owner)
            .map_err(|e| AgentError::Internal(e.to_string()))?;
        self.persist(&inner)?;
        let range = inner.ipam.range();
        Ok(IpamResponse {
            address: AddressPair {
                ipv4: Some(ip.to_string()),
            },
            host_addressing: NodeAddressing {
                ipv4: NodeAddressingElement {
                    enabled: true,
                    ip: range.router().to_string(),
                    alloc_range: range.to_string(),
                },
            },
            ipv4: Some(IpamAddressResponse {
                ip: ip.to_string(),
                gateway: range.router().to_string(),
                cidrs: vec![range.to_string()],
            }),
        })
    }

    pub fn ipam_release(&self, ip: &str) -> Result<(), AgentError> {
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| AgentError::BadRequest(format!("{ip:?} is not an IPv4 address")))?;
        let mut inner = self.lock();
        if inner.endpoints.values().any(|ep| ep.ipv4 == ip) {
            return Err(AgentError::Conflict(format!(
                "{ip} is in use by an endpoint; delete the endpoint first"
            )));
        }
        inner
            .ipam
            .release(ip)
            .map_err(|e| AgentError::NotFound(e.to_string()))?;
        self.persist(&inner)
    }

    pub fn identity_list(&self) -> Vec<api::models::Identity> {
        self.lock()
            .identities
            .list()
            .iter()
            .map(identity_model)
            .collect()
    }

    pub fn identity_get(&self, id: &str) -> Result<api::models::Identity, AgentError> {
        let num: u32 = id
            .parse()
            .map_err(|_| AgentError::BadRequest(format!("identity {id:?} is not a number")))?;
        let inner = self.lock();
        inner
            .identities
            .list()
            .iter()
            .find(|i| i.id == num)
            .map(identity_model)
            .ok_or_else(|| AgentError::NotFound(format!("identity {num} not found")))
    }
}

fn identity_model(i: &identity::Identity) -> api::models::Identity {
    api::models::Identity {
        id: i.id,
        labels: i.labels.to_strings(),
        labels_sha256: identity::labels_sha256(&i.labels),
    }
}
