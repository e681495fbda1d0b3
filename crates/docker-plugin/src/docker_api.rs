//! The little of the Docker Engine API the plugin reads: which container
//! owns a libnetwork endpoint, and its labels. Plain HTTP/1.0 over
//! dockerd's unix socket (one request per connection, no chunked bodies),
//! which keeps the plugin free of an HTTP client stack.
//!
//! The container list is read, not `GET /containers/{id}/json`: dockerd
//! serves the list from a snapshot, while inspecting a container waits for
//! the container's lock, which dockerd holds while it starts the container
//! — exactly when the plugin asks.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// dockerd's default socket.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct DockerClient {
    socket: PathBuf,
}

/// One entry of `GET /containers/json`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerSummary {
    pub id: String,
    pub names: Vec<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub network_settings: Option<SummaryNetworkSettings>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct SummaryNetworkSettings {
    pub networks: Option<BTreeMap<String, EndpointSettings>>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct EndpointSettings {
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

impl ContainerSummary {
    /// Whether one of the container's networks is attached through the
    /// libnetwork endpoint `endpoint_id`.
    pub fn has_endpoint(&self, endpoint_id: &str) -> bool {
        self.network_settings
            .as_ref()
            .and_then(|s| s.networks.as_ref())
            .is_some_and(|n| n.values().any(|e| e.endpoint_id == endpoint_id))
    }

    /// `docker run --name` without dockerd's leading slash.
    pub fn name(&self) -> Option<&str> {
        self.names.first().map(|n| n.trim_start_matches('/'))
    }
}

impl DockerClient {
    /// `host` is `unix:///path` or a bare path.
    pub fn new(host: &str) -> DockerClient {
        DockerClient {
            socket: PathBuf::from(host.strip_prefix("unix://").unwrap_or(host)),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// All containers, running or not.
    pub fn containers(&self) -> Result<Vec<ContainerSummary>, String> {
        let body = self.get("/containers/json?all=1")?;
        serde_json::from_slice(&body).map_err(|e| {
            format!(
                "GET /containers/json from {}: unexpected answer: {e}",
                self.socket.display()
            )
        })
    }

    /// The container attached through `endpoint_id`, if dockerd reports it
    /// yet.
    pub fn container_with_endpoint(
        &self,
        endpoint_id: &str,
    ) -> Result<Option<ContainerSummary>, String> {
        Ok(self
            .containers()?
            .into_iter()
            .find(|c| c.has_endpoint(endpoint_id)))
    }

    fn get(&self, target: &str) -> Result<Vec<u8>, String> {
        let fail = |e: std::io::Error| {
            format!(
                "GET {target} from dockerd at {} failed: {e}",
                self.socket.display()
            )
        };
        let mut stream = UnixStream::connect(&self.socket).map_err(fail)?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
        write!(stream, "GET {target} HTTP/1.0\r\nHost: docker\r\n\r\n").map_err(fail)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(fail)?;
        let (status, body) = split_response(&raw)
            .ok_or_else(|| format!("GET {target}: dockerd sent a malformed HTTP answer"))?;
        if status != 200 {
            return Err(format!(
                "GET {target}: dockerd answered {status}: {}",
                String::from_utf8_lossy(body).trim()
            ));
        }
        Ok(body.to_vec())
    }
}

/// Status code and body of a close-delimited HTTP response.
fn split_response(raw: &[u8]) -> Option<(u16, &[u8])> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, &raw[end + 4..]))
}

/// The container's labels as Cilium endpoint labels (`container:k=v`).
/// Labels the agent's label grammar cannot carry (spaces, `=` in keys...)
/// are left out rather than failing the whole set.
pub fn endpoint_labels(labels: &BTreeMap<String, String>) -> Vec<String> {
    labels
        .iter()
        .filter(|(k, v)| is_label_text(k, false) && is_label_text(v, true))
        .map(|(k, v)| {
            if v.is_empty() {
                format!("container:{k}")
            } else {
                format!("container:{k}={v}")
            }
        })
        .collect()
}

fn is_label_text(s: &str, may_be_empty: bool) -> bool {
    (may_be_empty || !s.is_empty())
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_container_by_endpoint() {
        let list = r#"[{"Id":"c1","Names":["/web"],"Labels":{"app":"web"},
          "NetworkSettings":{"Networks":{"net1":{"EndpointID":"ep1","NetworkID":"n1"}}}},
          {"Id":"c2","Names":["/other"],"Labels":null,"NetworkSettings":{"Networks":{}}}]"#;
        let list: Vec<ContainerSummary> = serde_json::from_str(list).unwrap();
        let found: Vec<_> = list.iter().filter(|c| c.has_endpoint("ep1")).collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name(), Some("web"));
        assert!(!list[1].has_endpoint("ep1"));
    }

    #[test]
    fn labels_become_container_labels_and_odd_ones_are_skipped() {
        let labels: BTreeMap<String, String> = [
            ("app", "web"),
            ("com.example/tier", "front-end"),
            ("flag", ""),
            ("bad key", "x"),
            ("note", "has spaces"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            endpoint_labels(&labels),
            vec![
                "container:app=web",
                "container:com.example/tier=front-end",
                "container:flag"
            ]
        );
    }

    #[test]
    fn splits_close_delimited_responses() {
        let raw = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[]";
        assert_eq!(split_response(raw), Some((200, &b"[]"[..])));
        assert_eq!(split_response(b"garbage"), None);
    }

    #[test]
    fn host_accepts_unix_urls_and_paths() {
        assert_eq!(
            DockerClient::new("unix:///x/d.sock").socket(),
            Path::new("/x/d.sock")
        );
        assert_eq!(
            DockerClient::new("/y/d.sock").socket(),
            Path::new("/y/d.sock")
        );
    }
}
