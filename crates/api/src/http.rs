//! Just enough HTTP/1.1 for the agent's API: write a request, read the status
//! line and headers, then expose the body as a reader that understands
//! Content-Length, chunked encoding, or EOF. A connection is kept for the next
//! request when the body was delimited and neither side asked to close it.
//!
//! Hand-written because the client must stay synchronous and tiny; the agent
//! side uses a real server.

use std::io::{self, BufRead, Read, Write};

/// Largest status line / header line / chunk-size line we accept; protects
/// against a peer that never sends a newline.
const MAX_LINE: usize = 16 * 1024;

pub(crate) struct Request<'a> {
    pub method: &'a str,
    /// Path plus query, e.g. `/v1/policy?replace=true`.
    pub target: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// Asks the agent to keep the connection open after the response.
    pub keep_alive: bool,
}

pub(crate) fn write_request(w: &mut impl Write, req: &Request<'_>) -> io::Result<()> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: cilium-rs\r\nAccept: application/json\r\n",
        req.method, req.target
    );
    if let Some(ct) = req.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    let connection = if req.keep_alive {
        "keep-alive"
    } else {
        "close"
    };
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
        req.body.len()
    ));
    w.write_all(head.as_bytes())?;
    w.write_all(req.body)?;
    w.flush()
}

/// Status and headers of a response; the body is still unread in `body`.
pub(crate) struct Response<R> {
    pub status: u16,
    pub body: Body<R>,
    /// The agent said `Connection: close`.
    pub closing: bool,
}

pub(crate) fn read_response<R: BufRead>(mut r: R) -> io::Result<Response<R>> {
    let status_line = read_line(&mut r, "status line")?;
    let status = parse_status_line(&status_line)?;

    let mut content_length = None;
    let mut chunked = false;
    let mut closing = false;
    loop {
        let line = read_line(&mut r, "header")?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("header without ':': {line:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<u64>()
                .map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            closing = value
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case("close"));
        }
    }

    // Chunked wins over Content-Length (RFC 9112 §6.3); 1xx/204/304 carry no body.
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked {
            remaining: 0,
            started: false,
        }
    } else if let Some(n) = content_length {
        Framing::Length(n)
    } else {
        Framing::UntilEof
    };
    Ok(Response {
        status,
        body: Body { inner: r, framing },
        closing,
    })
}

fn parse_status_line(line: &str) -> io::Result<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("not an HTTP/1.x status line: {line:?}")));
    }
    let code = parts.next().unwrap_or_default();
    code.parse::<u16>()
        .ok()
        .filter(|c| (100..600).contains(c))
        .ok_or_else(|| invalid(format!("bad status code {code:?} in {line:?}")))
}

/// Reads one CRLF- (or LF-) terminated line, without the terminator.
fn read_line(r: &mut impl BufRead, what: &str) -> io::Result<String> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("connection closed while reading {what}"),
        ));
    }
    if buf.last() != Some(&b'\n') {
        return Err(invalid(format!(
            "{what} longer than {MAX_LINE} bytes or cut short"
        )));
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| invalid(format!("{what} is not UTF-8")))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

enum Framing {
    Length(u64),
    Chunked {
        /// Bytes left in the current chunk.
        remaining: u64,
        /// Whether a chunk has been read (so a CRLF precedes the next size line).
        started: bool,
    },
    UntilEof,
    Done,
}

/// A response body, decoded from its transfer framing. Reads return data as
/// soon as it arrives, so a never-ending chunked stream can be consumed
/// incrementally.
pub(crate) struct Body<R> {
    inner: R,
    framing: Framing,
}

impl<R: BufRead> Body<R> {
    pub(crate) fn read_to_vec(self) -> io::Result<Vec<u8>> {
        Ok(self.read_all()?.0)
    }

    /// The whole body, and the connection when the body's end was marked
    /// (not EOF), so the next response on it can be read.
    pub(crate) fn read_all(mut self) -> io::Result<(Vec<u8>, Option<R>)> {
        let mut out = Vec::new();
        self.read_to_end(&mut out)?;
        let reusable = matches!(self.framing, Framing::Done);
        Ok((out, reusable.then_some(self.inner)))
    }

    /// Moves to the next chunk's data; returns false at the last chunk.
    fn next_chunk(&mut self, started: bool) -> io::Result<bool> {
        if started {
            let end = read_line(&mut self.inner, "chunk terminator")?;
            if !end.is_empty() {
                return Err(invalid(format!("chunk not followed by CRLF: {end:?}")));
            }
        }
        let line = read_line(&mut self.inner, "chunk size")?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size =
            u64::from_str_radix(hex, 16).map_err(|_| invalid(format!("bad chunk size {hex:?}")))?;
        if size == 0 {
            // Trailers, then the empty line that ends the message.
            while !read_line(&mut self.inner, "trailer")?.is_empty() {}
            self.framing = Framing::Done;
            return Ok(false);
        }
        self.framing = Framing::Chunked {
            remaining: size,
            started: true,
        };
        Ok(true)
    }
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.framing {
                Framing::Done => return Ok(0),
                Framing::UntilEof => return self.inner.read(buf),
                Framing::Length(0) => {
                    self.framing = Framing::Done;
                }
                Framing::Length(left) => {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.inner.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("connection closed with {left} body bytes missing"),
                        ));
                    }
                    self.framing = Framing::Length(left - n as u64);
                    return Ok(n);
                }
                Framing::Chunked {
                    remaining: 0,
                    started,
                } => {
                    if !self.next_chunk(started)? {
                        return Ok(0);
                    }
                }
                Framing::Chunked { remaining, started } => {
                    let want = buf
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    let n = self.inner.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "connection closed inside a chunk",
                        ));
                    }
                    self.framing = Framing::Chunked {
                        remaining: remaining - n as u64,
                        started,
                    };
                    return Ok(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn body_of(raw: &str) -> (u16, Vec<u8>) {
        let resp = read_response(Cursor::new(raw.as_bytes().to_vec())).unwrap();
        (resp.status, resp.body.read_to_vec().unwrap())
    }

    #[test]
    fn content_length_body_stops_at_length() {
        let (status, body) =
            body_of("HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhelloIGNORED");
        assert_eq!(status, 201);
        assert_eq!(body, b"hello");
    }

    #[test]
    fn chunked_body_with_extension_and_trailer() {
        let raw = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                   3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";
        assert_eq!(body_of(raw).1, b"abc0123456789");
    }

    #[test]
    fn body_until_eof_without_length() {
        assert_eq!(body_of("HTTP/1.0 200 OK\n\nall of it").1, b"all of it");
    }

    #[test]
    fn delimited_bodies_leave_the_connection_reusable() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n";
        let first = read_response(Cursor::new(raw.as_bytes().to_vec())).unwrap();
        assert!(!first.closing);
        let (body, rest) = first.body.read_all().unwrap();
        assert_eq!(body, b"ok");
        let second = read_response(rest.expect("length-delimited")).unwrap();
        assert_eq!(second.status, 204);

        let until_eof = read_response(Cursor::new(b"HTTP/1.0 200 OK\n\nx".to_vec())).unwrap();
        assert!(until_eof.body.read_all().unwrap().1.is_none());
        let closing = read_response(Cursor::new(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ))
        .unwrap();
        assert!(closing.closing);
    }

    #[test]
    fn no_content_has_no_body() {
        assert!(body_of("HTTP/1.1 204 No Content\r\n\r\n").1.is_empty());
    }

    #[test]
    fn malformed_answers_name_the_problem() {
        let err = |raw: &str| match read_response(Cursor::new(raw.as_bytes().to_vec())) {
            Ok(r) => r.body.read_to_vec().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(err("SSH-2.0\r\n\r\n").contains("status line"));
        assert!(err("HTTP/1.1 abc OK\r\n\r\n").contains("status code"));
        assert!(err("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").contains("Content-Length"));
        assert!(err("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc").contains("missing"));
        assert!(
            err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                .contains("chunk size")
        );
    }

    #[test]
    fn request_has_host_length_and_close() {
        let mut out = Vec::new();
        write_request(
            &mut out,
            &Request {
                method: "PUT",
                target: "/v1/policy",
                content_type: Some("application/json"),
                body: b"[]",
                keep_alive: false,
            },
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("PUT /v1/policy HTTP/1.1\r\nHost: localhost\r\n"));
        assert!(text.contains("Content-Type: application/json\r\n"));
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.ends_with("Connection: close\r\n\r\n[]"));
    }
}
