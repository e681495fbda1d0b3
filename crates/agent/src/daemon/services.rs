//! Services: the API's service specs kept in the service table and
//! programmed into the datapath's LB maps. Each change is one line appended
//! to the state dir's services journal, so adding one at 10,000 does not
//! rewrite the others.

use std::collections::BTreeMap;

use api::models::{
    BackendAddress, FrontendAddress, LbEntry, Service, ServiceFlags, ServiceSpec, ServiceStatus,
};
use datapath::maps::{
    lb::{self, Frontend, ServiceEntry},
    LbMaps,
};

use super::Daemon;
use crate::{
    error::AgentError,
    services::{self, host_port, proto_name, BackendState, Plan, ServiceRecord, ServiceTable},
};

fn frontend(svc: &ServiceRecord) -> Frontend {
    Frontend {
        address: svc.frontend.ip,
        port: svc.frontend.port,
        proto: svc.frontend.proto,
    }
}

/// Backends first, then the service's slots, then backends nobody names.
fn program(
    lb: &mut LbMaps,
    table: &ServiceTable,
    svc: &ServiceRecord,
    plan: &Plan,
) -> Result<(), AgentError> {
    for (id, addr) in &plan.new_backends {
        lb.upsert_backend(*id, addr.ip, addr.port, addr.proto)?;
    }
    let entry = ServiceEntry {
        frontend: frontend(svc),
        rev_nat_index: svc.id,
        flags: lb::service_flags(&svc.kind),
        slots: table.slots(svc),
    };
    lb.upsert_service(&entry, plan.old_slot_count)?;
    for id in &plan.removed_backends {
        lb.remove_backend(*id)?;
    }
    Ok(())
}

pub(super) fn model(svc: &ServiceRecord) -> Service {
    let spec = ServiceSpec {
        id: svc.id as u32,
        frontend_address: FrontendAddress {
            ip: svc.frontend.ip.to_string(),
            port: svc.frontend.port,
            protocol: proto_name(svc.frontend.proto).into(),
        },
        backend_addresses: svc
            .backends
            .iter()
            .map(|b| BackendAddress {
                ip: b.addr.ip.to_string(),
                port: b.addr.port,
                weight: b.weight,
                state: match b.state {
                    BackendState::Active => "active",
                    BackendState::Maintenance => "maintenance",
                }
                .into(),
            })
            .collect(),
        flags: ServiceFlags {
            kind: svc.kind.clone(),
            name: svc.name.clone(),
            namespace: svc.namespace.clone(),
        },
    };
    Service {
        status: ServiceStatus {
            realized: spec.clone(),
        },
        spec,
    }
}

impl Daemon {
    /// Creates or updates a service; `true` when it is new.
    pub fn service_upsert(
        &self,
        id: &str,
        spec: ServiceSpec,
    ) -> Result<(Service, bool), AgentError> {
        let record = services::validate(id, &spec).map_err(AgentError::BadRequest)?;
        let applied = self.service_apply(record.clone())?;
        self.publish_service(&record);
        Ok(applied)
    }

    /// Puts a validated service into the table, the LB maps and the state
    /// dir (the API's path and the cluster's, which does not publish).
    pub(super) fn service_apply(
        &self,
        record: ServiceRecord,
    ) -> Result<(Service, bool), AgentError> {
        let mut inner = self.lock();
        let previous = inner.services.get(record.id).cloned();
        let plan = inner
            .services
            .upsert(record.clone())
            .map_err(AgentError::Conflict)?;
        let inner = &mut *inner;
        if let Err(e) = program(&mut inner.maps.lb, &inner.services, &record, &plan) {
            // Put the table (and as much of the kernel as will go) back.
            match previous {
                Some(old) => {
                    if let Ok(plan) = inner.services.upsert(old.clone()) {
                        let _ = program(&mut inner.maps.lb, &inner.services, &old, &plan);
                    }
                }
                None => {
                    inner.services.delete(record.id);
                }
            }
            return Err(e);
        }
        self.state.save_service(&record)?;
        Ok((model(&record), previous.is_none()))
    }

    /// A service this node derives itself (from Kubernetes Services, which
    /// every node watches): into the LB maps and the state dir, never
    /// published to the kvstore.
    pub fn service_upsert_local(&self, id: u16, spec: ServiceSpec) -> Result<(), AgentError> {
        let record = services::validate(&id.to_string(), &spec).map_err(AgentError::BadRequest)?;
        if self.lock().services.get(id) == Some(&record) {
            return Ok(());
        }
        self.service_apply(record).map(drop)
    }

    pub fn service_remove_local(&self, id: u16) -> Result<(), AgentError> {
        self.service_remove(id)
    }

    pub fn service_delete(&self, id: &str) -> Result<(), AgentError> {
        let num = parse_id(id)?;
        self.service_remove(num)?;
        self.unpublish_service(num);
        Ok(())
    }

    /// Takes a service out of the table, the LB maps and the state dir.
    pub(super) fn service_remove(&self, num: u16) -> Result<(), AgentError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let (svc, plan) = inner
            .services
            .delete(num)
            .ok_or_else(|| AgentError::NotFound(format!("service {num} not found")))?;
        inner
            .maps
            .lb
            .remove_service(frontend(&svc), svc.id, plan.old_slot_count)?;
        for id in &plan.removed_backends {
            inner.maps.lb.remove_backend(*id)?;
        }
        self.state.remove_service(num)?;
        Ok(())
    }

    pub fn service_get(&self, id: &str) -> Result<Service, AgentError> {
        let num = parse_id(id)?;
        let inner = self.lock();
        inner
            .services
            .get(num)
            .map(model)
            .ok_or_else(|| AgentError::NotFound(format!("service {num} not found")))
    }

    pub fn service_list(&self) -> Vec<Service> {
        self.lock().services.iter().map(model).collect()
    }

    /// What the kernel's LB maps hold.
    pub fn lb_dump(&self) -> Result<Vec<LbEntry>, AgentError> {
        let inner = self.lock();
        let mut out = Vec::new();
        for svc in inner.maps.lb.services()? {
            let mut slots = Vec::new();
            for id in &svc.slots {
                slots.push(match inner.maps.lb.backend(*id)? {
                    Some(b) => format!("{} (id {id})", host_port(b.address, b.port)),
                    None => format!("missing backend (id {id})"),
                });
            }
            out.push(LbEntry {
                frontend: format!(
                    "{}/{}",
                    host_port(svc.frontend.address, svc.frontend.port),
                    proto_name(svc.frontend.proto)
                ),
                rev_nat_index: svc.rev_nat_index,
                slots,
            });
        }
        Ok(out)
    }

    /// After a restart: the table from the state dir, the kernel made to
    /// match it (services it should not have are removed).
    pub(super) fn restore_services(&self, inner: &mut super::Inner) -> Result<(), AgentError> {
        let kernel: BTreeMap<Frontend, ServiceEntry> = inner
            .maps
            .lb
            .services()?
            .into_iter()
            .map(|s| (s.frontend, s))
            .collect();
        let mut table = ServiceTable::default();
        for record in self.state.load_services()? {
            let plan = table.upsert(record.clone()).map_err(AgentError::Internal)?;
            let old_slots = kernel.get(&frontend(&record)).map_or(0, |s| s.slots.len());
            let plan = Plan {
                old_slot_count: old_slots,
                ..plan
            };
            program(&mut inner.maps.lb, &table, &record, &plan)?;
        }
        let wanted: std::collections::BTreeSet<Frontend> = table.iter().map(frontend).collect();
        for (f, s) in &kernel {
            if !wanted.contains(f) {
                inner
                    .maps
                    .lb
                    .remove_service(*f, s.rev_nat_index, s.slots.len())?;
            }
        }
        inner.services = table;
        Ok(())
    }
}

fn parse_id(id: &str) -> Result<u16, AgentError> {
    id.parse().ok().filter(|n| *n != 0).ok_or_else(|| {
        AgentError::BadRequest(format!(
            "service id {id:?} must be a number from 1 to 65535"
        ))
    })
}
