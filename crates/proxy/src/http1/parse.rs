//! Request and response heads, parsed strictly so that the proxy and the
//! upstream can never disagree on where a message ends (request smuggling):
//! CRLF line endings only, no obs-fold, no whitespace before the colon, one
//! framing (Content-Length *or* chunked), one Host, bounded head size.

use crate::access_log::L7Protocol;
use crate::filter::{L7Request, LogFields};
use crate::policy::{CompiledPolicy, HttpRequestView};

/// Largest request or response head (request line + headers).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
pub const MAX_HEADERS: usize = 128;
/// Longest request method. Enforced on complete and partial heads alike, so
/// that a request reads the same however the network cuts it.
const MAX_METHOD_BYTES: usize = 32;

/// Why a message is refused; every variant means "400 and close".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("head exceeds {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    #[error("malformed start line")]
    StartLine,
    #[error("bare CR or LF in head")]
    BareLineEnding,
    #[error("obsolete line folding in header {0:?}")]
    ObsFold(String),
    #[error("malformed header line {0:?}")]
    HeaderLine(String),
    #[error("invalid Content-Length {0:?}")]
    ContentLength(String),
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndChunked,
    #[error("unsupported Transfer-Encoding {0:?}")]
    TransferEncoding(String),
    #[error("several Host headers")]
    DuplicateHost,
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    #[error("invalid chunk: {0}")]
    Chunk(&'static str),
    #[error("message ended early")]
    Truncated,
}

/// How the body after a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
    /// Responses only: the body runs until the upstream closes.
    UntilClose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    /// Minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
    pub headers: Vec<(String, String)>,
    pub host: Option<String>,
    pub framing: BodyFraming,
    pub keep_alive: bool,
    /// Bytes of the head, including the final empty line.
    pub head_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub framing: BodyFraming,
    pub keep_alive: bool,
    pub head_len: usize,
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Finds the end of the head; `Ok(None)` = need more bytes.
fn head_end(buf: &[u8]) -> Result<Option<usize>, HttpError> {
    let limit = buf.len().min(MAX_HEAD_BYTES);
    for i in 0..limit {
        match buf[i] {
            b'\n' if i == 0 || buf[i - 1] != b'\r' => return Err(HttpError::BareLineEnding),
            b'\r' if i + 1 < buf.len() && buf[i + 1] != b'\n' => {
                return Err(HttpError::BareLineEnding)
            }
            b'\n' if i >= 3 && &buf[i - 3..=i] == b"\r\n\r\n" => return Ok(Some(i + 1)),
            _ => {}
        }
    }
    if buf.len() >= MAX_HEAD_BYTES {
        Err(HttpError::HeadTooLarge)
    } else {
        Ok(None)
    }
}

/// Header lines of a head (between the start line and the empty line).
fn parse_headers(lines: &[u8]) -> Result<Vec<(String, String)>, HttpError> {
    let mut headers = Vec::new();
    for line in lines.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let text = || String::from_utf8_lossy(line).into_owned();
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(HttpError::ObsFold(text()));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| HttpError::HeaderLine(text()))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(HttpError::HeaderLine(text()));
        }
        let value = &line[colon + 1..];
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(HttpError::HeaderLine(text()));
        }
        if headers.len() == MAX_HEADERS {
            return Err(HttpError::TooManyHeaders);
        }
        headers.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value)
                .trim_matches([' ', '\t'])
                .to_string(),
        ));
    }
    Ok(headers)
}

fn values<'a>(headers: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    values(headers, name)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Framing from Content-Length / Transfer-Encoding; `None` = neither present.
fn body_framing(headers: &[(String, String)]) -> Result<Option<BodyFraming>, HttpError> {
    let mut length: Option<u64> = None;
    for value in values(headers, "content-length") {
        for part in value.split(',') {
            let part = part.trim();
            let parsed =
                (!part.is_empty() && part.len() <= 19 && part.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| part.parse::<u64>().ok())
                    .flatten()
                    .ok_or_else(|| HttpError::ContentLength(value.to_string()))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(HttpError::ContentLength(value.to_string()));
            }
            length = Some(parsed);
        }
    }
    let codings: Vec<String> = values(headers, "transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    if codings.is_empty() {
        return Ok(length.map(BodyFraming::Length));
    }
    if length.is_some() {
        return Err(HttpError::LengthAndChunked);
    }
    let chunked_count = codings.iter().filter(|c| *c == "chunked").count();
    if codings.last().map(String::as_str) != Some("chunked") || chunked_count != 1 {
        return Err(HttpError::TransferEncoding(codings.join(", ")));
    }
    Ok(Some(BodyFraming::Chunked))
}

/// Parses a request head at the start of `buf`; `Ok(None)` = incomplete.
pub fn parse_request(buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
    let Some(head_len) = head_end(buf)? else {
        // Fail fast on garbage (TLS, binary) instead of waiting for a CRLF.
        let method_end = buf.iter().position(|&b| b == b' ').unwrap_or(buf.len());
        if method_end > MAX_METHOD_BYTES || !buf[..method_end].iter().all(|&b| is_tchar(b)) {
            return Err(HttpError::StartLine);
        }
        return Ok(None);
    };
    let head = &buf[..head_len - 2];
    let line_end = head
        .iter()
        .position(|&b| b == b'\r')
        .ok_or(HttpError::StartLine)?;
    let start = &head[..line_end];
    let mut parts = start.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::StartLine);
    };
    if method.is_empty()
        || method.len() > MAX_METHOD_BYTES
        || !method.iter().all(|&b| is_tchar(b))
        || target.is_empty()
        || !target.iter().all(|&b| b.is_ascii_graphic())
    {
        return Err(HttpError::StartLine);
    }
    let minor_version = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        _ => return Err(HttpError::StartLine),
    };
    let headers = parse_headers(&head[line_end + 2..])?;
    let host = {
        let mut hosts = values(&headers, "host");
        let host = hosts.next().map(str::to_string);
        if hosts.next().is_some() {
            return Err(HttpError::DuplicateHost);
        }
        host
    };
    if host.is_none() && minor_version == 1 {
        return Err(HttpError::MissingHost);
    }
    let framing = body_framing(&headers)?;
    if minor_version == 0 && framing == Some(BodyFraming::Chunked) {
        return Err(HttpError::TransferEncoding("chunked in HTTP/1.0".into()));
    }
    let keep_alive = if minor_version == 1 {
        !has_token(&headers, "connection", "close")
    } else {
        has_token(&headers, "connection", "keep-alive")
    };
    Ok(Some(RequestHead {
        method: String::from_utf8_lossy(method).into_owned(),
        target: String::from_utf8_lossy(target).into_owned(),
        minor_version,
        headers,
        host,
        framing: framing.unwrap_or(BodyFraming::None),
        keep_alive,
        head_len,
    }))
}

/// Parses a response head; `request_method` decides whether a body follows.
pub fn parse_response(buf: &[u8], request_method: &str) -> Result<Option<ResponseHead>, HttpError> {
    let Some(head_len) = head_end(buf)? else {
        return Ok(None);
    };
    let head = &buf[..head_len - 2];
    let line_end = head
        .iter()
        .position(|&b| b == b'\r')
        .ok_or(HttpError::StartLine)?;
    let start = &head[..line_end];
    if start.len() < 12 || !start.starts_with(b"HTTP/1.") || start[8] != b' ' {
        return Err(HttpError::StartLine);
    }
    let minor_version = start[7];
    let status = std::str::from_utf8(&start[9..12])
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or(HttpError::StartLine)?;
    let headers = parse_headers(&head[line_end + 2..])?;
    let no_body =
        request_method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if no_body {
        BodyFraming::None
    } else {
        body_framing(&headers)?.unwrap_or(BodyFraming::UntilClose)
    };
    let keep_alive = framing != BodyFraming::UntilClose
        && if minor_version == b'1' {
            !has_token(&headers, "connection", "close")
        } else {
            has_token(&headers, "connection", "keep-alive")
        };
    Ok(Some(ResponseHead {
        status,
        framing,
        keep_alive,
        head_len,
    }))
}

impl RequestHead {
    /// `Expect: 100-continue` with a body to come.
    pub fn expects_continue(&self) -> bool {
        self.framing != BodyFraming::None && has_token(&self.headers, "expect", "100-continue")
    }

    /// The path the rules see: the target, or for absolute-form its path part.
    pub fn policy_path(&self) -> &str {
        match self.target.find("://") {
            Some(scheme_end) => {
                let rest = &self.target[scheme_end + 3..];
                rest.find('/').map_or("/", |i| &rest[i..])
            }
            None => &self.target,
        }
    }
}

impl L7Request for RequestHead {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Http
    }

    fn allowed_by(&self, policy: &CompiledPolicy, remote_identity: u32) -> bool {
        let view = HttpRequestView::new(
            &self.method,
            self.policy_path(),
            self.host.as_deref(),
            &self.headers,
        );
        policy.allows_http(remote_identity, &view)
    }

    fn log_fields(&self) -> LogFields {
        LogFields {
            method: self.method.clone(),
            path: self.target.clone(),
            host: self.host.clone(),
            topics: Vec::new(),
            dns: None,
        }
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
