//! Docker's plugin protocol as it comes over the wire: every call is a
//! `POST /<Interface>.<Method>` with a JSON body (PascalCase names). Only
//! the fields this plugin reads are decoded; unknown ones are ignored, so
//! newer dockerd versions keep working.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::PluginError;

/// The media type of plugin protocol bodies.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// libnetwork's `types.CONNECTED`: a route straight onto the link.
pub const ROUTE_CONNECTED: u8 = 1;

/// The IPAM option naming what an address request is for.
pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
/// ... and its value when dockerd asks for the network's gateway.
pub const GATEWAY_ADDRESS: &str = "com.docker.network.gateway";

/// Address spaces answered to `GetDefaultAddressSpaces`.
pub const LOCAL_ADDRESS_SPACE: &str = "CiliumLocal";
pub const GLOBAL_ADDRESS_SPACE: &str = "CiliumGlobal";
/// The pools: the agent's IPv4 allocation range, and its IPv6 one for
/// networks created with `--ipv6`.
pub const POOL_V4: &str = "CiliumPoolv4";
pub const POOL_V6: &str = "CiliumPoolv6";

/// Prefix the container side of the veth gets inside the container
/// (dockerd appends an index: `eth0`).
pub const CONTAINER_IF_PREFIX: &str = "eth";

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct NetworkRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct EndpointRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "IPv4Data")]
    pub ipv4_data: Option<Vec<IpamData>>,
    #[serde(rename = "IPv6Data")]
    pub ipv6_data: Option<Vec<IpamData>>,
    #[serde(rename = "Options")]
    pub options: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct IpamData {
    pub address_space: String,
    pub pool: String,
    pub gateway: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct EndpointInterface {
    pub address: String,
    #[serde(rename = "AddressIPv6")]
    pub address_ipv6: String,
    pub mac_address: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct CreateEndpoint {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Interface")]
    pub interface: Option<EndpointInterface>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Join {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Path of the container's network namespace (dockerd bind-mounts it
    /// there once the sandbox exists; it may still be empty during Join).
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct RequestPool {
    pub address_space: String,
    pub pool: String,
    pub sub_pool: String,
    #[serde(rename = "V6")]
    pub v6: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RequestAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(rename = "Address")]
    pub address: String,
    #[serde(rename = "Options")]
    pub options: Option<HashMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ReleaseAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(rename = "Address")]
    pub address: String,
}

/// Decodes a call's body; an empty body counts as `{}` (dockerd sends
/// `null` or nothing to the parameterless calls).
pub fn decode<T: serde::de::DeserializeOwned + Default>(
    method: &str,
    body: &[u8],
) -> Result<T, PluginError> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() || trimmed == b"null" {
        return Ok(T::default());
    }
    serde_json::from_slice(trimmed).map_err(|e| {
        PluginError::bad_request(format!("{method}: the request body is not valid JSON: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_create_endpoint_as_dockerd_sends_it() {
        let body = br#"{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"10.1.0.5/32","AddressIPv6":"","MacAddress":""},"Options":{"com.docker.network.endpoint.exposedports":[]}}"#;
        let req: CreateEndpoint = decode("CreateEndpoint", body).unwrap();
        assert_eq!(req.endpoint_id, "e1");
        assert_eq!(req.interface.unwrap().address, "10.1.0.5/32");
    }

    #[test]
    fn decodes_request_address_options() {
        let body = br#"{"PoolID":"CiliumPoolv4","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}"#;
        let req: RequestAddress = decode("RequestAddress", body).unwrap();
        assert_eq!(
            req.options.unwrap()[REQUEST_ADDRESS_TYPE],
            GATEWAY_ADDRESS.to_string()
        );
    }

    #[test]
    fn empty_bodies_are_empty_requests_and_garbage_is_an_error() {
        let r: NetworkRef = decode("DeleteNetwork", b"").unwrap();
        assert_eq!(r, NetworkRef::default());
        let r: NetworkRef = decode("DeleteNetwork", b"null").unwrap();
        assert_eq!(r, NetworkRef::default());
        let e = decode::<NetworkRef>("DeleteNetwork", b"{nope").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("DeleteNetwork"), "{e}");
    }
}
