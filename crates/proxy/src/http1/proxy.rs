//! One HTTP/1.1 client connection: parse each request head, ask the policy,
//! then either forward the request (head and body bytes unchanged) and relay
//! the upstream's response, or answer `403 Access denied` and keep reading.
//! Requests are handled one at a time, so pipelined requests are answered in
//! order even when some are denied locally. Anything malformed gets `400` and
//! the connection is closed.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::chunked::ChunkedDecoder;
use super::parse::{
    parse_request, parse_response, BodyFraming, HttpError, RequestHead, ResponseHead,
};
use crate::access_log::{L7Protocol, L7Verdict};
use crate::filter::{ConnContext, Malformed};
use crate::listener::connect_upstream;
use crate::redirect::upstream_options;

/// HTTP/2 connection preface (prior knowledge, as gRPC uses in cleartext).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Body of a denied request, as Cilium's proxy sends it.
pub const DENIED_BODY: &str = "Access denied\r\n";

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("client sent a malformed request: {0}")]
    Client(#[from] HttpError),
    #[error("upstream sent a malformed response: {0}")]
    Upstream(HttpError),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("http2: {0}")]
    H2(#[from] h2::Error),
}

pub fn denied_response(keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive {
        ""
    } else {
        "connection: close\r\n"
    };
    format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n{connection}\r\n{DENIED_BODY}",
        DENIED_BODY.len()
    )
    .into_bytes()
}

fn closing_response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Writers are buffered so a head and the body bytes already read go out in
/// one write; `forward_body` flushes before it waits for more, so nothing
/// forwarded is held back.
type Writer = BufWriter<OwnedWriteHalf>;

const WRITE_BUFFER: usize = 16 * 1024;

struct Upstream {
    reader: OwnedReadHalf,
    writer: Writer,
    buf: BytesMut,
}

pub async fn serve(mut client: TcpStream, ctx: ConnContext) -> Result<(), ProxyError> {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        let n = buf.len().min(H2_PREFACE.len());
        if buf[..n] != H2_PREFACE[..n] {
            break;
        }
        if n == H2_PREFACE.len() {
            return crate::http2::serve(client, buf.freeze(), ctx).await;
        }
        if client.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
    let (mut client_reader, client_writer) = client.into_split();
    let mut client_writer = BufWriter::with_capacity(WRITE_BUFFER, client_writer);
    let mut upstream: Option<Upstream> = None;
    loop {
        let head = match read_request_head(&mut client_reader, &mut buf).await {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(()),
            Err(err) => return reject(&mut client_writer, &ctx, err).await,
        };
        // Forwarded exactly as received.
        let head_bytes = buf.split_to(head.head_len);
        if !ctx.request_filter(&head) {
            if head.expects_continue() {
                // The client holds its body back until told to send it: answer
                // now and close rather than wait for a body that may not come.
                client_writer.write_all(&denied_response(false)).await?;
                client_writer.flush().await?;
                ctx.logging(&head, L7Verdict::Denied, 403);
                return Ok(());
            }
            let discard: Option<&mut Writer> = None;
            if let Err(err) =
                forward_body(head.framing, &mut client_reader, &mut buf, discard).await
            {
                return reject(&mut client_writer, &ctx, err).await;
            }
            client_writer
                .write_all(&denied_response(head.keep_alive))
                .await?;
            client_writer.flush().await?;
            ctx.logging(&head, L7Verdict::Denied, 403);
            if !head.keep_alive {
                return Ok(());
            }
            continue;
        }
        let up = match &mut upstream {
            Some(up) => up,
            None => {
                let addr = ctx.original_dst;
                match connect_upstream(addr, upstream_options(&ctx)).await {
                    Ok(stream) => {
                        let (reader, writer) = stream.into_split();
                        upstream.insert(Upstream {
                            reader,
                            writer: BufWriter::with_capacity(WRITE_BUFFER, writer),
                            buf: BytesMut::with_capacity(16 * 1024),
                        })
                    }
                    Err(source) => {
                        let _ = client_writer
                            .write_all(&closing_response(
                                "503 Service Unavailable",
                                "upstream connect error",
                            ))
                            .await;
                        let _ = client_writer.flush().await;
                        ctx.logging(&head, L7Verdict::Error, 503);
                        return Err(ProxyError::Connect { addr, source });
                    }
                }
            }
        };
        up.writer.write_all(&head_bytes).await?;
        let request_body = forward_body(
            head.framing,
            &mut client_reader,
            &mut buf,
            Some(&mut up.writer),
        );
        let response = relay_response(
            &head.method,
            &mut up.reader,
            &mut up.buf,
            &mut client_writer,
        );
        let response = match tokio::try_join!(request_body, response) {
            Ok(((), response)) => response,
            Err(ProxyError::Client(err)) => {
                return reject(&mut client_writer, &ctx, ProxyError::Client(err)).await
            }
            Err(err) => {
                ctx.logging(&head, L7Verdict::Error, 502);
                return Err(err);
            }
        };
        ctx.logging(&head, L7Verdict::Forwarded, response.status);
        if response.status == 101 {
            let up = upstream.take().expect("connected above");
            return tunnel(client_reader, client_writer, buf, up).await;
        }
        if !head.keep_alive || !response.keep_alive {
            return Ok(());
        }
    }
}

/// Answers a malformed request with 400 and ends the connection.
async fn reject<W: AsyncWrite + Unpin>(
    writer: &mut W,
    ctx: &ConnContext,
    err: ProxyError,
) -> Result<(), ProxyError> {
    let _ = writer
        .write_all(&closing_response("400 Bad Request", "Bad Request"))
        .await;
    let _ = writer.shutdown().await;
    ctx.logging(&Malformed(L7Protocol::Http), L7Verdict::Error, 400);
    Err(err)
}

/// Reads until a whole request head is buffered; `Ok(None)` on a clean close
/// between requests.
async fn read_request_head<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> Result<Option<RequestHead>, ProxyError> {
    loop {
        if !buf.is_empty() {
            if let Some(head) = parse_request(buf)? {
                return Ok(Some(head));
            }
        }
        if reader.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(HttpError::Truncated.into())
            };
        }
    }
}

/// Relays one response (skipping over interim 1xx ones) to the client.
async fn relay_response<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    method: &str,
    reader: &mut R,
    buf: &mut BytesMut,
    client: &mut W,
) -> Result<ResponseHead, ProxyError> {
    loop {
        let head = loop {
            match parse_response(buf, method).map_err(ProxyError::Upstream)? {
                Some(head) => break head,
                None if reader.read_buf(buf).await? == 0 => {
                    return Err(ProxyError::Upstream(HttpError::Truncated))
                }
                None => {}
            }
        };
        client.write_all(&buf[..head.head_len]).await?;
        buf.advance(head.head_len);
        if (100..200).contains(&head.status) {
            client.flush().await?;
            if head.status != 101 {
                continue;
            }
        }
        forward_body(head.framing, reader, buf, Some(client))
            .await
            .map_err(|err| match err {
                ProxyError::Client(err) => ProxyError::Upstream(err),
                other => other,
            })?;
        return Ok(head);
    }
}

/// Moves one body from `reader` (its first bytes already in `buf`) to
/// `writer` unchanged, or discards it when `writer` is `None`. Bytes after
/// the body stay in `buf`. The writer is flushed whenever the copy waits for
/// more input and once the body is done, whatever the framing: output left in
/// the buffer would stall a peer that waits for it (the head of a request
/// without body bytes, one whose client awaits `100 Continue`, a streamed body).
pub async fn forward_body<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    framing: BodyFraming,
    reader: &mut R,
    buf: &mut BytesMut,
    writer: Option<&mut W>,
) -> Result<(), ProxyError> {
    let mut body = BodyCopy {
        reader,
        buf,
        writer,
    };
    body.copy(framing).await?;
    body.flush().await?;
    Ok(())
}

/// The two ends of one body being forwarded.
struct BodyCopy<'a, R, W> {
    reader: &'a mut R,
    buf: &'a mut BytesMut,
    writer: Option<&'a mut W>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> BodyCopy<'_, R, W> {
    async fn copy(&mut self, framing: BodyFraming) -> Result<(), ProxyError> {
        match framing {
            BodyFraming::None => Ok(()),
            BodyFraming::Length(mut left) => {
                while left > 0 {
                    if self.buf.is_empty() && !self.fill().await? {
                        return Err(HttpError::Truncated.into());
                    }
                    let take = left.min(self.buf.len() as u64) as usize;
                    self.send(take).await?;
                    left -= take as u64;
                }
                Ok(())
            }
            BodyFraming::Chunked => {
                let mut decoder = ChunkedDecoder::default();
                loop {
                    if !self.buf.is_empty() {
                        let used = decoder.advance(self.buf)?;
                        self.send(used).await?;
                        if decoder.is_done() {
                            return Ok(());
                        }
                    }
                    if !self.fill().await? {
                        return Err(HttpError::Truncated.into());
                    }
                }
            }
            BodyFraming::UntilClose => loop {
                self.send(self.buf.len()).await?;
                if !self.fill().await? {
                    return Ok(());
                }
            },
        }
    }

    /// Passes on the first `len` buffered bytes (into the writer's buffer).
    async fn send(&mut self, len: usize) -> io::Result<()> {
        let piece = self.buf.split_to(len);
        match self.writer.as_mut() {
            Some(writer) => writer.write_all(&piece).await,
            None => Ok(()),
        }
    }

    /// Reads more input, after flushing what was sent; `false` at end of input.
    async fn fill(&mut self) -> io::Result<bool> {
        self.flush().await?;
        Ok(self.reader.read_buf(self.buf).await? > 0)
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(writer) => writer.flush().await,
            None => Ok(()),
        }
    }
}

/// After `101 Switching Protocols`: raw bytes both ways until either side closes.
async fn tunnel(
    mut client_reader: OwnedReadHalf,
    client_writer: Writer,
    client_buf: BytesMut,
    up: Upstream,
) -> Result<(), ProxyError> {
    let (mut client_writer, mut up_writer) = (client_writer.into_inner(), up.writer.into_inner());
    let mut up_reader = up.reader;
    up_writer.write_all(&client_buf).await?;
    client_writer.write_all(&up.buf).await?;
    let upward = async {
        tokio::io::copy(&mut client_reader, &mut up_writer).await?;
        up_writer.shutdown().await
    };
    let downward = async {
        tokio::io::copy(&mut up_reader, &mut client_writer).await?;
        client_writer.shutdown().await
    };
    tokio::try_join!(upward, downward)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn body_end_flushes_whatever_the_framing() {
        for (framing, body) in [
            (BodyFraming::None, &b""[..]),
            (BodyFraming::Length(0), b""),
            (BodyFraming::Length(3), b"abc"),
            (BodyFraming::Chunked, b"0\r\n\r\n"),
        ] {
            let mut writer = BufWriter::new(Vec::new());
            writer.write_all(b"HEAD").await.unwrap();
            let mut buf = BytesMut::from(body);
            forward_body(framing, &mut &b""[..], &mut buf, Some(&mut writer))
                .await
                .unwrap();
            assert_eq!(*writer.get_ref(), [b"HEAD", body].concat(), "{framing:?}");
        }
    }

    /// `Expect: 100-continue`: the upstream must see the head while the
    /// client still holds the body back.
    #[tokio::test]
    async fn head_goes_out_before_the_body_is_awaited() {
        let (mut client, mut reader) = tokio::io::duplex(1024);
        let (writer, mut upstream) = tokio::io::duplex(1024);
        let mut writer = BufWriter::new(writer);
        writer.write_all(b"HEAD").await.unwrap();
        let mut buf = BytesMut::new();
        let forward = forward_body(
            BodyFraming::Length(4),
            &mut reader,
            &mut buf,
            Some(&mut writer),
        );
        let peers = async {
            let mut got = [0u8; 4];
            upstream.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"HEAD");
            client.write_all(b"body").await.unwrap();
            upstream.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"body");
        };
        let both = async { tokio::join!(forward, peers) };
        let (forwarded, ()) = tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .expect("head held back until the body came");
        forwarded.unwrap();
    }
}
