//! Blocking client for the agent's `/v1` API on its unix socket. Regular
//! calls reuse one kept-alive connection (a controller programming thousands
//! of services pays for connecting once); streams get their own connection.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ClientError;
use crate::http::{self, Body, Request};
use crate::models::*;

/// Where the agent listens unless told otherwise (Cilium's path).
pub const DEFAULT_SOCKET: &str = "/var/run/cilium/cilium.sock";

/// Environment variable naming the socket when `-H` is not given.
pub const SOCKET_ENV: &str = "CILIUM_SOCK";

/// How long a regular (non-streaming) request may wait for the agent.
const REQUEST_TIMEOUT: Option<Duration> = Some(Duration::from_secs(120));

/// Resolves the socket path: `-H unix:///path` or a bare path, else the
/// `$CILIUM_SOCK` value, else [`DEFAULT_SOCKET`].
pub fn resolve_socket(host: Option<&str>, env: Option<&str>) -> PathBuf {
    let chosen = host
        .filter(|h| !h.is_empty())
        .or(env.filter(|e| !e.is_empty()))
        .unwrap_or(DEFAULT_SOCKET);
    PathBuf::from(chosen.strip_prefix("unix://").unwrap_or(chosen))
}

#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    /// The connection the last call left open, shared by clones.
    idle: Arc<Mutex<Option<Connection>>>,
}

type Connection = BufReader<UnixStream>;

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Client {
            socket: socket.into(),
            idle: Arc::default(),
        }
    }

    /// See [`resolve_socket`]; reads `$CILIUM_SOCK` from the environment.
    pub fn from_host(host: Option<&str>) -> Self {
        let env = std::env::var(SOCKET_ENV).ok();
        Client::new(resolve_socket(host, env.as_deref()))
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    // ------------------------------------------------------------ routes

    pub fn healthz(&self) -> Result<StatusResponse, ClientError> {
        self.get_json("/v1/healthz")
    }

    pub fn config(&self) -> Result<DaemonConfiguration, ClientError> {
        self.get_json("/v1/config")
    }

    /// Addresses of every family the agent has enabled.
    pub fn ipam_allocate(&self, owner: Option<&str>) -> Result<IpamResponse, ClientError> {
        self.ipam_allocate_family(owner, None)
    }

    /// `family`: `ipv4` or `ipv6` alone; `None` for every enabled family.
    pub fn ipam_allocate_family(
        &self,
        owner: Option<&str>,
        family: Option<&str>,
    ) -> Result<IpamResponse, ClientError> {
        let query: Vec<String> = [("owner", owner), ("family", family)]
            .into_iter()
            .filter_map(|(k, v)| Some(format!("{k}={}", encode_component(v?))))
            .collect();
        let target = match query.is_empty() {
            true => "/v1/ipam".to_string(),
            false => format!("/v1/ipam?{}", query.join("&")),
        };
        self.call_json("POST", &target, None)
    }

    pub fn ipam_release(&self, ip: &str) -> Result<(), ClientError> {
        self.call_unit(
            "DELETE",
            &format!("/v1/ipam/{}", encode_component(ip)),
            None,
        )
    }

    /// `id` 0 lets the agent choose the endpoint id.
    pub fn endpoint_put(
        &self,
        id: u16,
        req: &EndpointChangeRequest,
    ) -> Result<Endpoint, ClientError> {
        let body = json_body(req)?;
        self.call_json("PUT", &format!("/v1/endpoint/{id}"), Some(body))
    }

    /// `id` is the numeric endpoint id or a prefixed one such as `container-id:XYZ`.
    pub fn endpoint_get(&self, id: &str) -> Result<Endpoint, ClientError> {
        self.get_json(&format!("/v1/endpoint/{}", encode_component(id)))
    }

    pub fn endpoint_list(&self) -> Result<Vec<Endpoint>, ClientError> {
        self.get_json("/v1/endpoint")
    }

    pub fn endpoint_delete(&self, id: &str) -> Result<(), ClientError> {
        self.call_unit(
            "DELETE",
            &format!("/v1/endpoint/{}", encode_component(id)),
            None,
        )
    }

    /// Replaces the endpoint's user labels with `spec.user`.
    pub fn endpoint_labels_patch(
        &self,
        id: &str,
        spec: &LabelConfigurationSpec,
    ) -> Result<(), ClientError> {
        let body = json_body(spec)?;
        self.call_unit(
            "PATCH",
            &format!("/v1/endpoint/{}/labels", encode_component(id)),
            Some(body),
        )
    }

    pub fn identity_list(&self) -> Result<Vec<Identity>, ClientError> {
        self.get_json("/v1/identity")
    }

    pub fn identity_get(&self, id: &str) -> Result<Identity, ClientError> {
        self.get_json(&format!("/v1/identity/{}", encode_component(id)))
    }

    /// Imports rules given as JSON or YAML text; `replace` swaps out rules
    /// carrying the same labels instead of adding next to them.
    pub fn policy_put(&self, text: &str, replace: bool) -> Result<Policy, ClientError> {
        let target = if replace {
            "/v1/policy?replace=true"
        } else {
            "/v1/policy"
        };
        let trimmed = text.trim_start();
        let content_type = if trimmed.starts_with('[') || trimmed.starts_with('{') {
            "application/json"
        } else {
            "application/yaml"
        };
        let body = (content_type, text.as_bytes().to_vec());
        self.call_json("PUT", target, Some(body))
    }

    pub fn policy_get(&self) -> Result<Policy, ClientError> {
        self.get_json("/v1/policy")
    }

    /// Deletes rules carrying all of `labels`; an empty list deletes every rule.
    pub fn policy_delete(&self, labels: &[String]) -> Result<Policy, ClientError> {
        let body = json_body(&labels)?;
        self.call_json("DELETE", "/v1/policy", Some(body))
    }

    pub fn map_get(&self, name: &str) -> Result<BpfMap, ClientError> {
        self.get_json(&format!("/v1/map/{}", encode_component(name)))
    }

    /// Opens the event stream; an empty `types` means every kind.
    pub fn monitor(&self, types: &[String]) -> Result<MonitorStream, ClientError> {
        let query: Vec<String> = types
            .iter()
            .map(|t| format!("type={}", encode_component(t)))
            .collect();
        let target = if query.is_empty() {
            "/v1/monitor".to_string()
        } else {
            format!("/v1/monitor?{}", query.join("&"))
        };
        let body = self.open_stream(&target)?;
        Ok(MonitorStream {
            lines: BufReader::new(body),
            finished: false,
        })
    }

    /// Opens the event stream narrowed by `query` (filtered by the agent).
    pub fn monitor_query(&self, query: &MonitorQuery) -> Result<MonitorStream, ClientError> {
        let body = self.open_stream(&monitor_target(query))?;
        Ok(MonitorStream {
            lines: BufReader::new(body),
            finished: false,
        })
    }

    /// `cilium policy trace`: the verdict for traffic between two label
    /// sets, identities or endpoints.
    pub fn policy_resolve(
        &self,
        selector: &TraceSelector,
    ) -> Result<PolicyTraceResult, ClientError> {
        let body = json_body(selector)?;
        self.call_json("POST", "/v1/policy/resolve", Some(body))
    }

    /// `cilium metrics list`: every metric sample the agent exports.
    pub fn metrics_list(&self) -> Result<Vec<MetricSample>, ClientError> {
        self.get_json("/v1/metrics")
    }

    /// `cilium service update`: creates or replaces service `id`.
    pub fn service_put(&self, id: u16, spec: &ServiceSpec) -> Result<Service, ClientError> {
        let body = json_body(spec)?;
        self.call_json("PUT", &format!("/v1/service/{id}"), Some(body))
    }

    pub fn service_get(&self, id: u16) -> Result<Service, ClientError> {
        self.get_json(&format!("/v1/service/{id}"))
    }

    pub fn service_list(&self) -> Result<Vec<Service>, ClientError> {
        self.get_json("/v1/service")
    }

    pub fn service_delete(&self, id: u16) -> Result<(), ClientError> {
        self.call_unit("DELETE", &format!("/v1/service/{id}"), None)
    }

    /// `cilium bpf lb list`: the services as the kernel's LB maps hold them.
    pub fn lb_list(&self) -> Result<Vec<LbEntry>, ClientError> {
        self.get_json("/v1/lb")
    }

    /// `cilium node list`: the nodes this agent knows, itself included.
    pub fn cluster_nodes(&self) -> Result<ClusterNodeStatus, ClientError> {
        self.get_json("/v1/cluster/nodes")
    }

    /// `cilium kvstore get`: the key, or with `recursive` every key under
    /// the prefix. A missing key is [`ClientError::Api`] with status 404.
    pub fn kvstore_get(&self, key: &str, recursive: bool) -> Result<Vec<KvPair>, ClientError> {
        self.get_json(&kvstore_target(key, recursive))
    }

    /// `cilium kvstore set`: writes `value` (as text) under `key`.
    pub fn kvstore_set(&self, key: &str, value: &str) -> Result<(), ClientError> {
        let body = ("text/plain", value.as_bytes().to_vec());
        self.call_unit("PUT", &kvstore_target(key, false), Some(body))
    }

    /// `cilium kvstore delete`: the key, or with `recursive` the prefix.
    pub fn kvstore_delete(&self, key: &str, recursive: bool) -> Result<(), ClientError> {
        self.call_unit("DELETE", &kvstore_target(key, recursive), None)
    }

    /// `cilium fqdn cache list`: names endpoints resolved, optionally only
    /// those `pattern` (a `matchPattern`) selects.
    pub fn fqdn_cache_list(&self, pattern: Option<&str>) -> Result<Vec<DnsLookup>, ClientError> {
        self.get_json(&fqdn_cache_target(pattern))
    }

    /// `cilium fqdn cache clean`: forgets them.
    pub fn fqdn_cache_clean(&self, pattern: Option<&str>) -> Result<(), ClientError> {
        self.call_unit("DELETE", &fqdn_cache_target(pattern), None)
    }

    // ------------------------------------------------------------ plumbing

    fn get_json<T: DeserializeOwned>(&self, target: &str) -> Result<T, ClientError> {
        self.call_json("GET", target, None)
    }

    fn call_json<T: DeserializeOwned>(
        &self,
        method: &str,
        target: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<T, ClientError> {
        let bytes = self.call(method, target, body)?;
        serde_json::from_slice(&bytes).map_err(|error| ClientError::Decode {
            what: format!("response to {method} {target}"),
            error,
        })
    }

    fn call_unit(
        &self,
        method: &str,
        target: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<(), ClientError> {
        self.call(method, target, body).map(drop)
    }

    /// Sends one request and reads the whole answer: the body of a 2xx, or
    /// the agent's error as [`ClientError::Api`]. Uses the connection the
    /// previous call left open; if the agent closed it meanwhile (a restart),
    /// the request goes again on a new one.
    fn call(
        &self,
        method: &str,
        target: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Vec<u8>, ClientError> {
        let (content_type, bytes) = match &body {
            Some((ct, b)) => (Some(*ct), b.as_slice()),
            None => (None, &[][..]),
        };
        let request = Request {
            method,
            target,
            content_type,
            body: bytes,
            keep_alive: true,
        };
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).take();
        let response = match idle.map(|conn| exchange(conn, &request)) {
            Some(Err(e)) if closed_while_idle(&e) => {
                exchange(self.connect(REQUEST_TIMEOUT)?, &request)?
            }
            Some(answer) => answer?,
            None => exchange(self.connect(REQUEST_TIMEOUT)?, &request)?,
        };
        let (status, closing) = (response.status, response.closing);
        let (raw, conn) = response.body.read_all()?;
        if let (Some(conn), false) = (conn, closing) {
            *self.idle.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn);
        }
        if (200..300).contains(&status) {
            return Ok(raw);
        }
        Err(api_error(status, &raw))
    }

    fn connect(&self, timeout: Option<Duration>) -> Result<Connection, ClientError> {
        let stream = UnixStream::connect(&self.socket).map_err(|error| ClientError::Connect {
            path: self.socket.clone(),
            error,
        })?;
        stream.set_read_timeout(timeout)?;
        stream.set_write_timeout(timeout)?;
        Ok(BufReader::new(stream))
    }

    /// Opens a stream: a `GET` on a connection of its own, without a
    /// timeout (it lasts as long as the agent sends). The body of a 2xx
    /// answer, or the agent's error as [`ClientError::Api`].
    fn open_stream(&self, target: &str) -> Result<Body<Connection>, ClientError> {
        let request = Request {
            method: "GET",
            target,
            content_type: None,
            body: &[],
            keep_alive: false,
        };
        let response = exchange(self.connect(None)?, &request)?;
        if (200..300).contains(&response.status) {
            return Ok(response.body);
        }
        let status = response.status;
        Err(api_error(
            status,
            &response.body.read_to_vec().unwrap_or_default(),
        ))
    }
}

/// Writes `request` on `conn` and reads the answer's status and headers.
/// The agent may answer before it has read the whole body (413, or any
/// early error) and close: the write then fails with a broken pipe, but its
/// answer is waiting on the socket and is what the caller gets. Only when
/// there is no answer does the write's error stand.
fn exchange(
    mut conn: Connection,
    request: &Request<'_>,
) -> std::io::Result<http::Response<Connection>> {
    match http::write_request(conn.get_mut(), request) {
        Ok(()) => http::read_response(conn),
        Err(write_error) if peer_stopped_reading(&write_error) => {
            http::read_response(conn).map_err(|_| write_error)
        }
        Err(write_error) => Err(write_error),
    }
}

/// The agent closed (or reset) the connection while the request was being
/// written.
fn peer_stopped_reading(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted)
}

/// The agent had closed a kept connection before this request reached it.
fn closed_while_idle(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), UnexpectedEof | ConnectionReset | BrokenPipe)
}

fn api_error(status: u16, raw: &[u8]) -> ClientError {
    ClientError::Api {
        status,
        message: error_message(status, raw),
    }
}

/// The `message` of an [`ApiError`] body, else the body as text, else a
/// generic line naming the status.
fn error_message(status: u16, raw: &[u8]) -> String {
    if let Ok(err) = serde_json::from_slice::<ApiError>(raw) {
        if !err.message.is_empty() {
            return err.message;
        }
    }
    let text = String::from_utf8_lossy(raw).trim().to_string();
    if text.is_empty() {
        format!("agent answered HTTP {status} without a message")
    } else {
        text
    }
}

fn json_body<T: Serialize + ?Sized>(value: &T) -> Result<(&'static str, Vec<u8>), ClientError> {
    let bytes = serde_json::to_vec(value).map_err(|error| ClientError::Decode {
        what: "request body".to_string(),
        error,
    })?;
    Ok(("application/json", bytes))
}

/// Percent-encodes everything outside RFC 3986's unreserved set, plus `:`
/// kept readable for ids like `container-id:XYZ`.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/v1/kvstore/cilium/state/nodes/v1?recursive=true`: the key keeps its
/// `/` separators (the agent routes the rest of the path as the key); each
/// segment is percent-encoded on its own.
pub fn kvstore_target(key: &str, recursive: bool) -> String {
    let path: Vec<String> = key
        .trim_start_matches('/')
        .split('/')
        .map(encode_component)
        .collect();
    let query = if recursive { "?recursive=true" } else { "" };
    format!("/v1/kvstore/{}{query}", path.join("/"))
}

/// `/v1/monitor?type=drop&from=12...` for a query.
pub fn monitor_target(query: &MonitorQuery) -> String {
    let mut params: Vec<String> = query
        .types
        .iter()
        .map(|t| format!("type={}", encode_component(t)))
        .collect();
    for (name, value) in [
        ("from", query.from),
        ("to", query.to),
        ("related-to", query.related_to),
    ] {
        if let Some(id) = value {
            params.push(format!("{name}={id}"));
        }
    }
    if params.is_empty() {
        "/v1/monitor".to_string()
    } else {
        format!("/v1/monitor?{}", params.join("&"))
    }
}

/// The `GET /v1/monitor` stream: one event per NDJSON line, read as it
/// arrives. Ends when the agent closes the stream; after an error it yields
/// nothing more.
pub struct MonitorStream {
    lines: BufReader<Body<Connection>>,
    finished: bool,
}

impl Iterator for MonitorStream {
    type Item = Result<MonitorEvent, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.finished {
            let mut line = String::new();
            match self.lines.read_line(&mut line) {
                Ok(0) => self.finished = true,
                Ok(_) if line.trim().is_empty() => continue,
                Ok(_) => {
                    return Some(serde_json::from_str(line.trim()).map_err(|error| {
                        ClientError::Decode {
                            what: format!("monitor event {:?}", line.trim()),
                            error,
                        }
                    }))
                }
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e.into()));
                }
            }
        }
        None
    }
}

fn fqdn_cache_target(pattern: Option<&str>) -> String {
    match pattern {
        Some(p) => format!("/v1/fqdn/cache?matchpattern={}", encode_component(p)),
        None => "/v1/fqdn/cache".into(),
    }
}

#[cfg(test)]
mod tests;
