//! What dockerd sees when a call fails: an HTTP status and `{"Err": msg}`,
//! which dockerd shows to the user as the reason a command failed.

use api::ClientError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    pub status: u16,
    pub message: String,
}

impl PluginError {
    /// The request itself is wrong (bad JSON, unsupported option).
    pub fn bad_request(message: impl Into<String>) -> PluginError {
        PluginError {
            status: 400,
            message: message.into(),
        }
    }

    /// Something on this node failed (agent, kernel).
    pub fn internal(message: impl Into<String>) -> PluginError {
        PluginError {
            status: 500,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> PluginError {
        PluginError {
            status: 404,
            message: message.into(),
        }
    }

    /// A failed agent call `what` (`POST /v1/ipam`), saying where the agent
    /// was looked for when it is unreachable.
    pub fn agent(agent: &api::Client, what: &str, e: ClientError) -> PluginError {
        match &e {
            ClientError::Connect { .. } | ClientError::Io(_) => PluginError::internal(format!(
                "cilium-agent is not reachable at {} ({what}: {e}); start it, or point \
                 cilium-docker at its socket with --agent-socket",
                agent.socket().display()
            )),
            _ => PluginError::internal(format!("cilium-agent refused {what}: {e}")),
        }
    }

    /// A kernel-side failure from cilium-cni's plumbing.
    pub fn plumbing(e: cni::CniError) -> PluginError {
        PluginError::internal(e.to_string())
    }

    /// The body dockerd decodes.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "Err": self.message })
    }
}
