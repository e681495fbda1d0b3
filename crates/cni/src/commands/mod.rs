//! The commands' IO: each one talks to the agent and the kernel for a
//! request that [`crate::request`] has already validated.

mod add;
mod check;
mod del;

use api::Client;

use crate::agent;
use crate::error::{code, CniError};
use crate::request::Request;
use crate::version;

/// Executes `request`; returns what goes on stdout on success.
/// `env_socket` is `$CILIUM_SOCK`.
pub fn execute(request: Request, env_socket: Option<&str>) -> Result<String, CniError> {
    let client_for = |socket: &Option<String>| agent::client(socket.as_deref(), env_socket);
    match request {
        Request::Version { requested } => Ok(version::version_info(requested.as_deref())),
        Request::Add { conf, att, labels } => {
            let client = client_for(&conf.socket);
            add::add(&client, &conf, &att, labels).map(|outcome| outcome.to_json(&conf.cni_version))
        }
        Request::Del { conf, att } => {
            del::del(&client_for(&conf.socket), &att).map(|()| String::new())
        }
        Request::Check { conf, att } => {
            check::check(&client_for(&conf.socket), &conf, &att).map(|()| String::new())
        }
        Request::Status { conf } => status(&client_for(&conf.socket)).map(|()| String::new()),
        // Nothing to collect: every attachment's state lives in the agent
        // and in the host veth that DEL removes; GC succeeds without
        // touching attachments it cannot prove are ours.
        Request::Gc { .. } => Ok(String::new()),
    }
}

/// STATUS: ready when the agent answers its health check.
fn status(client: &Client) -> Result<(), CniError> {
    client.healthz().map(|_| ()).map_err(|e| {
        let inner = agent::to_cni(client, "GET /v1/healthz", e);
        CniError::new(code::PLUGIN_NOT_AVAILABLE, inner.msg, inner.details)
    })
}
