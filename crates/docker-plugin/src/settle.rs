//! Finishing an attachment after Join, in the background. dockerd moves
//! and configures the interface only after Join has answered (when runc
//! has made the container's namespace), and it reports which container
//! owns the endpoint only once the container starts. So a thread per join
//! polls for both:
//!
//! 1. the interface, up with its address, inside the sandbox: then it adds
//!    the permanent neighbour entry gateway → host-side MAC (nothing
//!    answers ARP for the gateway; see the report on the datapath's ARP
//!    responder) and, unless the endpoint is dual stack, turns IPv6 off
//!    on it;
//! 2. the container in dockerd's list with this endpoint: then its labels
//!    become the endpoint's `container:` labels (`PATCH .../labels`), and
//!    the endpoint leaves the `reserved:init` identity.
//!
//! `Leave`/`DeleteEndpoint` stop it; it gives up after [`SETTLE_TIMEOUT`].

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use api::LabelConfigurationSpec;
use cni::plumbing::handoff;

use crate::docker_api::endpoint_labels;
use crate::driver::Driver;
use crate::network::agent_id;

/// How long a join may take to be finished.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Polling period: the container may start sending right away.
const POLL: Duration = Duration::from_millis(10);
/// dockerd's container list is heavier: asked less often.
const DOCKER_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct Job {
    pub endpoint_id: String,
    pub sandbox_key: PathBuf,
    pub container_mac: String,
    pub host_mac: String,
    pub gateway: Ipv4Addr,
    /// The endpoint has an IPv6 address too (a `--ipv6` network).
    pub ipv6: bool,
}

/// Starts finishing `job` on its own thread.
pub fn spawn(driver: Driver, job: Job) {
    driver
        .settling
        .lock()
        .expect("settling set poisoned")
        .insert(job.endpoint_id.clone());
    std::thread::spawn(move || run(&driver, &job));
}

/// Stops the work for `endpoint_id`, if any.
pub fn stop(driver: &Driver, endpoint_id: &str) {
    driver
        .settling
        .lock()
        .expect("settling set poisoned")
        .remove(endpoint_id);
}

fn active(driver: &Driver, endpoint_id: &str) -> bool {
    driver
        .settling
        .lock()
        .expect("settling set poisoned")
        .contains(endpoint_id)
}

fn run(driver: &Driver, job: &Job) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut neighbour_done = false;
    let mut labels_done = false;
    let mut next_docker_poll = Instant::now();
    let mut last_error = String::new();
    while !(neighbour_done && labels_done) {
        if !active(driver, &job.endpoint_id) {
            return;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "cilium-docker: endpoint {}: gave up finishing the attachment after \
                 {SETTLE_TIMEOUT:?} (neighbour entry {}, labels {}); last error: {last_error}",
                job.endpoint_id,
                if neighbour_done { "done" } else { "missing" },
                if labels_done { "done" } else { "missing" },
            );
            break;
        }
        if !neighbour_done {
            match finish_neighbour(job) {
                Ok(done) => neighbour_done = done,
                Err(e) => last_error = e,
            }
        }
        if !labels_done && Instant::now() >= next_docker_poll {
            next_docker_poll = Instant::now() + DOCKER_POLL;
            match apply_labels(driver, job) {
                Ok(done) => labels_done = done,
                Err(e) => last_error = e,
            }
        }
        std::thread::sleep(POLL);
    }
    stop(driver, &job.endpoint_id);
    if driver.verbose {
        eprintln!(
            "cilium-docker: endpoint {}: attachment finished",
            job.endpoint_id
        );
    }
}

/// True once the neighbour entry is in place; false while dockerd has not
/// configured the interface yet (the namespace may not even be mounted).
fn finish_neighbour(job: &Job) -> Result<bool, String> {
    let Ok(Some(ifname)) = handoff::configured_interface(&job.sandbox_key, &job.container_mac)
    else {
        return Ok(false);
    };
    let ipv6 = job.ipv6;
    handoff::finish_container_side(&job.sandbox_key, &ifname, job.gateway, &job.host_mac, ipv6)
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// True once the labels are applied (or the container has none).
fn apply_labels(driver: &Driver, job: &Job) -> Result<bool, String> {
    let Some(container) = driver.docker.container_with_endpoint(&job.endpoint_id)? else {
        return Ok(false);
    };
    let labels = endpoint_labels(&container.labels.clone().unwrap_or_default());
    if driver.verbose {
        eprintln!(
            "cilium-docker: endpoint {} belongs to container {} ({}): labels {labels:?}",
            job.endpoint_id,
            container.id,
            container.name().unwrap_or("?")
        );
    }
    if labels.is_empty() {
        return Ok(true);
    }
    let id = agent_id(&job.endpoint_id);
    driver
        .agent
        .endpoint_labels_patch(&id, &LabelConfigurationSpec { user: labels })
        .map_err(|e| format!("PATCH /v1/endpoint/{id}/labels: {e}"))?;
    Ok(true)
}
