//! The network configuration a runtime passes on stdin: one plugin's entry
//! of a conflist, with `name` and `cniVersion` filled in by the runtime,
//! plus `runtimeConfig` and (for CHECK/DEL) `prevResult`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{code, CniError};
use crate::version;

/// What cilium-cni reads from its configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    /// The network's name.
    pub name: String,
    /// The agent's socket from the configuration (`cilium-socket` or
    /// `socket-path`), if set.
    pub socket: Option<String>,
    /// `args.cni.labels` (CNI conventions): `key=value` pairs that every
    /// container on this network carries.
    pub labels: Vec<(String, String)>,
    pub runtime: RuntimeConfig,
    /// The result of the previous ADD (CHECK, DEL), as the runtime sent it.
    pub prev_result: Option<serde_json::Value>,
}

/// `runtimeConfig`: capability arguments the runtime fills in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    #[serde(rename = "portMappings")]
    pub port_mappings: Vec<PortMapping>,
    /// Container labels, where a runtime passes them (`labels` capability).
    pub labels: BTreeMap<String, String>,
}

/// One published port. containerd's CRI capitalises the keys (`HostPort`),
/// podman and the conventions document do not: both are accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PortMapping {
    #[serde(rename = "hostPort", alias = "HostPort")]
    pub host_port: u16,
    #[serde(rename = "containerPort", alias = "ContainerPort")]
    pub container_port: u16,
    #[serde(rename = "protocol", alias = "Protocol", default)]
    pub protocol: String,
    #[serde(rename = "hostIP", alias = "HostIP", alias = "hostIp", default)]
    pub host_ip: String,
}

/// The wire shape; unknown fields (`type`, `capabilities`, other plugins'
/// settings) are ignored as the spec asks.
#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "cniVersion")]
    cni_version: Option<String>,
    name: Option<String>,
    #[serde(rename = "cilium-socket")]
    cilium_socket: Option<String>,
    #[serde(rename = "socket-path")]
    socket_path: Option<String>,
    #[serde(default)]
    args: Args,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: RuntimeConfig,
    #[serde(rename = "prevResult")]
    prev_result: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Args {
    cni: CniSection,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CniSection {
    labels: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: String,
}

/// Just the version, to tag an error about the rest of the input.
pub fn sniff_version(stdin: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct V {
        #[serde(rename = "cniVersion")]
        cni_version: Option<String>,
    }
    serde_json::from_slice::<V>(stdin)
        .ok()?
        .cni_version
        .filter(|v| version::SUPPORTED_VERSIONS.contains(&v.as_str()))
}

impl NetConf {
    /// Parses and validates stdin: code 6 if it is not the JSON object we
    /// expect, 1 for a version we do not speak, 7 for missing or invalid
    /// settings.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        if stdin.iter().all(u8::is_ascii_whitespace) {
            return Err(CniError::new(
                code::DECODING_FAILURE,
                "no network configuration on stdin",
                "the runtime must pass the network's configuration as JSON on stdin",
            ));
        }
        let wire: Wire = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                code::DECODING_FAILURE,
                "cannot decode the network configuration on stdin",
                e.to_string(),
            )
        })?;
        let cni_version = wire
            .cni_version
            .filter(|v| !v.is_empty())
            .ok_or_else(|| CniError::invalid_config("\"cniVersion\" is missing"))?;
        version::require_supported(&cni_version)?;
        let name = wire
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| CniError::invalid_config("\"name\" (the network's name) is missing"))?;
        let socket = match (wire.cilium_socket, wire.socket_path) {
            (Some(a), Some(b)) if a != b => {
                return Err(CniError::invalid_config(format!(
                    "\"cilium-socket\" ({a:?}) and \"socket-path\" ({b:?}) disagree: set one"
                )))
            }
            (a, b) => a.or(b).filter(|s| !s.is_empty()),
        };
        let labels = wire
            .args
            .cni
            .labels
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect();
        for (i, m) in wire.runtime_config.port_mappings.iter().enumerate() {
            if m.container_port == 0 {
                return Err(CniError::invalid_config(format!(
                    "runtimeConfig.portMappings[{i}].containerPort must be 1-65535"
                )));
            }
        }
        Ok(NetConf {
            cni_version,
            name,
            socket,
            labels,
            runtime: wire.runtime_config,
            prev_result: wire.prev_result,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<NetConf, CniError> {
        NetConf::parse(json.as_bytes())
    }

    #[test]
    fn minimal_config() {
        let c = parse(r#"{"cniVersion":"1.0.0","name":"cilium","type":"cilium-cni"}"#).unwrap();
        assert_eq!(c.cni_version, "1.0.0");
        assert_eq!(c.name, "cilium");
        assert_eq!(c.socket, None);
        assert!(c.labels.is_empty() && c.runtime.port_mappings.is_empty());
    }

    #[test]
    fn socket_from_either_key() {
        let a = parse(r#"{"cniVersion":"1.0.0","name":"n","cilium-socket":"/a.sock"}"#).unwrap();
        assert_eq!(a.socket.as_deref(), Some("/a.sock"));
        let b = parse(r#"{"cniVersion":"1.0.0","name":"n","socket-path":"/b.sock"}"#).unwrap();
        assert_eq!(b.socket.as_deref(), Some("/b.sock"));
        let e =
            parse(r#"{"cniVersion":"1.0.0","name":"n","socket-path":"/b","cilium-socket":"/a"}"#)
                .unwrap_err();
        assert_eq!(e.code, code::INVALID_NETWORK_CONFIG);
    }

    #[test]
    fn labels_from_args() {
        let c = parse(
            r#"{"cniVersion":"0.4.0","name":"n",
                "args":{"cni":{"labels":[{"key":"app","value":"web"},{"key":"k8s:tier"}]}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.labels,
            vec![
                ("app".into(), "web".into()),
                ("k8s:tier".into(), String::new())
            ]
        );
    }

    #[test]
    fn port_mappings_in_both_spellings() {
        let c = parse(
            r#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"portMappings":[
                {"hostPort":8080,"containerPort":80,"protocol":"tcp"},
                {"HostPort":5353,"ContainerPort":53,"Protocol":"udp","HostIP":"127.0.0.1"}]}}"#,
        )
        .unwrap();
        let m = &c.runtime.port_mappings;
        assert_eq!((m[0].host_port, m[0].container_port), (8080, 80));
        assert_eq!(m[0].protocol, "tcp");
        assert_eq!((m[1].host_port, m[1].container_port), (5353, 53));
        assert_eq!(
            (m[1].protocol.as_str(), m[1].host_ip.as_str()),
            ("udp", "127.0.0.1")
        );
        let e = parse(
            r#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"portMappings":[{"hostPort":1,"containerPort":0}]}}"#,
        )
        .unwrap_err();
        assert!(e.msg.contains("portMappings[0]"), "{e:?}");
    }

    #[test]
    fn runtime_labels_and_prev_result() {
        let c = parse(
            r#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"labels":{"app":"db"}},
                "prevResult":{"cniVersion":"1.0.0","ips":[]}}"#,
        )
        .unwrap();
        assert_eq!(c.runtime.labels.get("app").map(String::as_str), Some("db"));
        assert!(c.prev_result.is_some());
    }

    #[test]
    fn garbage_and_empty_stdin_are_decoding_failures() {
        for input in ["", "  \n", "{not json", "[1,2]", r#"{"cniVersion":1}"#] {
            let e = parse(input).unwrap_err();
            assert_eq!(e.code, code::DECODING_FAILURE, "{input:?}: {e:?}");
        }
    }

    #[test]
    fn version_and_name_are_checked() {
        assert_eq!(
            parse(r#"{"name":"n"}"#).unwrap_err().code,
            code::INVALID_NETWORK_CONFIG
        );
        assert_eq!(
            parse(r#"{"cniVersion":"0.1.0","name":"n"}"#)
                .unwrap_err()
                .code,
            code::INCOMPATIBLE_VERSION
        );
        assert_eq!(
            parse(r#"{"cniVersion":"1.0.0"}"#).unwrap_err().code,
            code::INVALID_NETWORK_CONFIG
        );
    }

    #[test]
    fn sniffs_only_supported_versions() {
        assert_eq!(sniff_version(br#"{"cniVersion":"0.4.0","x":"#), None);
        assert_eq!(
            sniff_version(br#"{"cniVersion":"0.4.0"}"#).as_deref(),
            Some("0.4.0")
        );
        assert_eq!(sniff_version(br#"{"cniVersion":"5.0.0"}"#), None);
    }
}
