//! Programming services through the agent's API, as `cilium service
//! update` does: one `PUT /v1/service/{id}` per service.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use api::{BackendAddress, Client, FrontendAddress, ServiceFlags, ServiceSpec};
use testbed::bench::signals;

use crate::catalog::ServiceDef;

pub fn spec(s: &ServiceDef) -> ServiceSpec {
    ServiceSpec {
        id: s.id as u32,
        frontend_address: FrontendAddress {
            ip: s.vip.to_string(),
            port: s.port,
            protocol: "TCP".into(),
        },
        backend_addresses: s
            .backends
            .iter()
            .map(|b| BackendAddress {
                ip: b.ip().to_string(),
                port: b.port(),
                weight: 1,
                state: "active".into(),
            })
            .collect(),
        flags: ServiceFlags {
            kind: "ClusterIP".into(),
            ..Default::default()
        },
    }
}

/// PUTs every service in order; the total time.
pub fn put_all(client: &Client, services: &[ServiceDef]) -> Result<Duration> {
    let started = Instant::now();
    for s in services {
        client
            .service_put(s.id, &spec(s))
            .with_context(|| format!("PUT /v1/service/{}", s.id))?;
        signals::check()?;
    }
    Ok(started.elapsed())
}

/// The time one PUT of a new service took; the service is deleted after.
pub fn add_one(client: &Client, s: &ServiceDef) -> Result<Duration> {
    let body = spec(s);
    let started = Instant::now();
    client
        .service_put(s.id, &body)
        .with_context(|| format!("PUT /v1/service/{}", s.id))?;
    let took = started.elapsed();
    client
        .service_delete(s.id)
        .with_context(|| format!("DELETE /v1/service/{}", s.id))?;
    Ok(took)
}
