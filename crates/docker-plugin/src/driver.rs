//! The plugin's state and the dispatch of protocol calls to handlers. The
//! plugin keeps no state of its own beyond the joins still settling: names
//! derive from the endpoint id and everything else lives in the agent, so a
//! restarted plugin serves the attachments made before.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::docker_api::DockerClient;
use crate::error::PluginError;
use crate::protocol::decode;
use crate::{ipam, network};

/// What every handler needs: the agent, dockerd and the joins in progress.
#[derive(Debug, Clone)]
pub struct Driver {
    pub agent: api::Client,
    pub docker: DockerClient,
    /// Endpoints whose attachment is still being finished (see `settle`);
    /// `Leave` removes its endpoint so the finishing work stops.
    pub settling: Arc<Mutex<HashSet<String>>>,
    /// Log every call and answer to stderr.
    pub verbose: bool,
}

/// The agent's addressing the plugin hands to dockerd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing {
    /// The endpoints' gateway (the agent's router IP).
    pub router: Ipv4Addr,
    /// The range the agent allocates from, e.g. `10.200.0.0/16`.
    pub alloc_range: String,
}

/// The agent's IPv6 addressing (dual-stack networks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing6 {
    pub router: std::net::Ipv6Addr,
    pub alloc_range: String,
}

impl Driver {
    pub fn new(agent: api::Client, docker: DockerClient) -> Driver {
        Driver {
            agent,
            docker,
            settling: Arc::new(Mutex::new(HashSet::new())),
            verbose: false,
        }
    }

    /// Handles `POST <path>` with `body`; the answer's JSON or the error
    /// dockerd will show.
    pub fn handle(&self, path: &str, body: &[u8]) -> Result<Value, PluginError> {
        let method = path.trim_start_matches('/');
        match method {
            "Plugin.Activate" => Ok(json!({"Implements": ["NetworkDriver", "IpamDriver"]})),

            "NetworkDriver.GetCapabilities" => {
                Ok(json!({"Scope": "local", "ConnectivityScope": "local"}))
            }
            "NetworkDriver.CreateNetwork" => network::create_network(self, &decode(method, body)?),
            "NetworkDriver.DeleteNetwork"
            | "NetworkDriver.AllocateNetwork"
            | "NetworkDriver.FreeNetwork"
            | "NetworkDriver.DiscoverNew"
            | "NetworkDriver.DiscoverDelete"
            | "NetworkDriver.ProgramExternalConnectivity"
            | "NetworkDriver.RevokeExternalConnectivity" => Ok(json!({})),
            "NetworkDriver.CreateEndpoint" => {
                network::create_endpoint(self, &decode(method, body)?)
            }
            "NetworkDriver.DeleteEndpoint" => {
                network::delete_endpoint(self, &decode(method, body)?)
            }
            "NetworkDriver.EndpointOperInfo" => Ok(json!({"Value": {}})),
            "NetworkDriver.Join" => network::join(self, &decode(method, body)?),
            "NetworkDriver.Leave" => network::leave(self, &decode(method, body)?),

            "IpamDriver.GetCapabilities" => Ok(ipam::capabilities()),
            "IpamDriver.GetDefaultAddressSpaces" => Ok(ipam::address_spaces()),
            "IpamDriver.RequestPool" => ipam::request_pool(self, &decode(method, body)?),
            "IpamDriver.ReleasePool" => Ok(json!({})),
            "IpamDriver.RequestAddress" => ipam::request_address(self, &decode(method, body)?),
            "IpamDriver.ReleaseAddress" => ipam::release_address(self, &decode(method, body)?),

            other => Err(PluginError::not_found(format!(
                "cilium-docker does not implement {other:?}"
            ))),
        }
    }

    /// Reads the agent's router IP and allocation range (`GET /v1/config`),
    /// every time: the agent may have restarted with other settings.
    pub fn addressing(&self) -> Result<Addressing, PluginError> {
        let config = self
            .agent
            .config()
            .map_err(|e| PluginError::agent(&self.agent, "GET /v1/config", e))?;
        let v4 = config.status.addressing.ipv4;
        let router = v4.ip.parse().map_err(|_| {
            PluginError::internal(format!(
                "cilium-agent reports no usable IPv4 router address ({:?})",
                v4.ip
            ))
        })?;
        if v4.alloc_range.is_empty() {
            return Err(PluginError::internal(
                "cilium-agent reports no IPv4 allocation range",
            ));
        }
        Ok(Addressing {
            router,
            alloc_range: v4.alloc_range,
        })
    }

    /// The agent's IPv6 router address and range; an error naming the
    /// flag when the agent has IPv6 off.
    pub fn addressing6(&self) -> Result<Addressing6, PluginError> {
        let config = self
            .agent
            .config()
            .map_err(|e| PluginError::agent(&self.agent, "GET /v1/config", e))?;
        let v6 = config
            .status
            .addressing
            .ipv6
            .filter(|v6| v6.enabled && !v6.alloc_range.is_empty())
            .ok_or_else(|| {
                PluginError::bad_request(
                    "cilium-docker: cilium-agent has IPv6 disabled (--enable-ipv6=false); \
                     create the network without --ipv6",
                )
            })?;
        let router = v6.ip.parse().map_err(|_| {
            PluginError::internal(format!(
                "cilium-agent reports no usable IPv6 router address ({:?})",
                v6.ip
            ))
        })?;
        Ok(Addressing6 {
            router,
            alloc_range: v6.alloc_range,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver() -> Driver {
        Driver::new(
            api::Client::new("/nonexistent/agent.sock"),
            DockerClient::new("/nonexistent/docker.sock"),
        )
    }

    #[test]
    fn activation_names_both_interfaces() {
        let v = driver().handle("/Plugin.Activate", b"").unwrap();
        assert_eq!(v["Implements"], json!(["NetworkDriver", "IpamDriver"]));
    }

    #[test]
    fn capabilities_are_local() {
        let v = driver()
            .handle("/NetworkDriver.GetCapabilities", b"{}")
            .unwrap();
        assert_eq!(v["Scope"], "local");
    }

    #[test]
    fn unknown_methods_are_404_with_an_err_body() {
        let e = driver()
            .handle("/NetworkDriver.Teleport", b"{}")
            .unwrap_err();
        assert_eq!(e.status, 404);
        assert!(e.body()["Err"].as_str().unwrap().contains("Teleport"));
    }

    #[test]
    fn an_unreachable_agent_is_named_in_the_error() {
        let e = driver()
            .handle("/IpamDriver.RequestPool", br#"{"V6":false}"#)
            .unwrap_err();
        assert_eq!(e.status, 500);
        assert!(e.message.contains("/nonexistent/agent.sock"), "{e}");
        assert!(e.message.contains("--agent-socket"), "{e}");
    }
}
