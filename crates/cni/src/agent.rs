//! Talking to cilium-agent: which socket, and what an API failure means to
//! the runtime (an unreachable agent is "try again later", code 11).

use std::path::PathBuf;

use api::{Client, ClientError};

use crate::error::{code, CniError};

/// The socket: the network configuration's `cilium-socket`/`socket-path`,
/// else `$CILIUM_SOCK`, else Cilium's default path.
pub fn socket(from_config: Option<&str>, from_env: Option<&str>) -> PathBuf {
    api::resolve_socket(from_config, from_env)
}

pub fn client(from_config: Option<&str>, from_env: Option<&str>) -> Client {
    Client::new(socket(from_config, from_env))
}

/// Maps a client error to the CNI error the runtime sees; `what` names the
/// request (`POST /v1/ipam`).
pub fn to_cni(client: &Client, what: &str, e: ClientError) -> CniError {
    let socket = client.socket().display();
    match &e {
        ClientError::Connect { .. } | ClientError::Io(_) => CniError::new(
            code::TRY_AGAIN_LATER,
            format!("cilium-agent is not reachable at {socket}"),
            format!(
                "{what}: {e}. Start cilium-agent, or point the plugin at its socket with \
                 \"cilium-socket\" in the network configuration or $CILIUM_SOCK"
            ),
        ),
        ClientError::Api { status, .. } if *status == 503 || *status == 429 => CniError::new(
            code::TRY_AGAIN_LATER,
            format!("cilium-agent is busy ({what})"),
            e.to_string(),
        ),
        _ => CniError::new(
            code::AGENT_REFUSED,
            format!("cilium-agent refused {what}"),
            e.to_string(),
        ),
    }
}

/// True if the agent answered 404: the thing is already gone.
pub fn is_not_found(e: &ClientError) -> bool {
    e.status() == Some(404)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_beats_environment_beats_default() {
        assert_eq!(
            socket(Some("/c.sock"), Some("/e.sock")),
            PathBuf::from("/c.sock")
        );
        assert_eq!(socket(None, Some("/e.sock")), PathBuf::from("/e.sock"));
        assert_eq!(socket(None, None), PathBuf::from(api::DEFAULT_SOCKET));
        assert_eq!(
            socket(Some("unix:///x.sock"), None),
            PathBuf::from("/x.sock")
        );
    }

    #[test]
    fn unreachable_agent_is_try_again_later() {
        let c = Client::new("/nonexistent/cilium.sock");
        let e = c.healthz().unwrap_err();
        let cni = to_cni(&c, "GET /v1/healthz", e);
        assert_eq!(cni.code, code::TRY_AGAIN_LATER);
        assert!(cni.msg.contains("/nonexistent/cilium.sock"), "{cni:?}");
        assert!(cni.details.contains("cilium-socket"), "{cni:?}");
    }

    #[test]
    fn refusals_and_busy_agents_differ() {
        let c = Client::new("/x");
        let refused = ClientError::Api {
            status: 400,
            message: "labels[0]: bad".into(),
        };
        assert_eq!(to_cni(&c, "PUT", refused).code, code::AGENT_REFUSED);
        let busy = ClientError::Api {
            status: 503,
            message: "starting".into(),
        };
        assert_eq!(to_cni(&c, "PUT", busy).code, code::TRY_AGAIN_LATER);
    }
}
