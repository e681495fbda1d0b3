//! A blocking client for the health API on its unix socket: one request
//! per connection (`Connection: close`), the answer read to its end.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::model::{HealthResponse, HealthStatusResponse};

/// Where the agent serves the health API unless told otherwise (Cilium's path).
pub const DEFAULT_SOCKET: &str = "/var/run/cilium/health.sock";
/// The socket's name, next to the agent's API socket.
pub const SOCKET_NAME: &str = "health.sock";

/// A synchronous probe of a large cluster can take a while.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Larger answers are refused rather than buffered.
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct HealthClient {
    socket: PathBuf,
}

impl HealthClient {
    /// `unix:///path` or a bare path.
    pub fn new(host: &str) -> HealthClient {
        HealthClient {
            socket: PathBuf::from(host.strip_prefix("unix://").unwrap_or(host)),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1beta/status`: the results of the last periodic round.
    pub fn status(&self) -> Result<HealthStatusResponse, ClientError> {
        self.call("GET", "/v1beta/status")
    }

    /// `PUT /v1beta/status/probe`: probes every node now.
    pub fn probe(&self) -> Result<HealthStatusResponse, ClientError> {
        self.call("PUT", "/v1beta/status/probe")
    }

    /// `GET /v1beta/healthz`.
    pub fn healthz(&self) -> Result<HealthResponse, ClientError> {
        self.call("GET", "/v1beta/healthz")
    }

    fn call<T: DeserializeOwned>(&self, method: &str, path: &str) -> Result<T, ClientError> {
        let mut stream =
            UnixStream::connect(&self.socket).map_err(|error| ClientError::Connect {
                path: self.socket.clone(),
                error,
            })?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        stream.take(MAX_RESPONSE).read_to_end(&mut raw)?;
        let (status, body) = parse_response(&raw)?;
        if !(200..300).contains(&status) {
            return Err(ClientError::Api {
                status,
                message: error_message(&body),
            });
        }
        serde_json::from_slice(&body).map_err(|error| ClientError::Decode {
            what: format!("the answer to {method} {path}"),
            error,
        })
    }
}

/// (status, body) of a complete HTTP/1.1 response.
pub(crate) fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), ClientError> {
    let bad = |what: &str| ClientError::Protocol(what.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("the response ends before its headers do"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest).ok_or_else(|| bad("malformed chunked body"))?
    } else if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(&format!("bad Content-Length {len:?}")))?;
        rest.get(..len)
            .ok_or_else(|| bad("the body is shorter than its Content-Length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// The `message` of a JSON error body, else the body as text.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_chunked_and_eof_bodies() {
        let (status, body) =
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}trailing").unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"{}"[..]));
        let (_, body) = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(body, b"abcde");
        let (status, body) =
            parse_response(b"HTTP/1.1 500 Oops\r\n\r\n{\"message\":\"x\"}").unwrap();
        assert_eq!(status, 500);
        assert_eq!(error_message(&body), "x");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn a_missing_socket_says_what_to_check() {
        let client = HealthClient::new("unix:///nonexistent/health.sock");
        assert_eq!(client.socket(), Path::new("/nonexistent/health.sock"));
        let err = client.status().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/health.sock"), "{err}");
        assert!(err.contains("Is cilium-agent running"), "{err}");
    }
}
