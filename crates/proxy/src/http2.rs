//! HTTP/2 (cleartext, prior knowledge; gRPC uses it) through the `h2` crate:
//! each stream is judged on `:method`, `:path`, `:authority` and headers.
//! Allowed streams go to one upstream HTTP/2 connection (headers, data and
//! trailers unchanged; framing is HTTP/2's own). Denied streams get what
//! Envoy's local reply gives: `403` with `Access denied`, or for gRPC a
//! trailers-only response with `grpc-status: 7` (PERMISSION_DENIED).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::client::SendRequest;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;

use crate::access_log::{L7Protocol, L7Verdict};
use crate::filter::{ConnContext, L7Request, LogFields};
use crate::http1::proxy::{ProxyError, DENIED_BODY};
use crate::listener::connect_upstream;
use crate::policy::{CompiledPolicy, HttpRequestView};
use crate::redirect::upstream_options;

/// gRPC's PERMISSION_DENIED.
pub const GRPC_PERMISSION_DENIED: &str = "7";

/// What the policy sees of one HTTP/2 stream.
#[derive(Debug, Clone)]
pub struct H2Request {
    pub method: String,
    pub path: String,
    pub authority: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl H2Request {
    pub fn from_request<B>(request: &Request<B>) -> Self {
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                request
                    .headers()
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            });
        H2Request {
            method: request.method().as_str().to_string(),
            path: request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            authority,
            headers,
        }
    }

    fn is_grpc(&self) -> bool {
        self.headers
            .iter()
            .any(|(name, value)| name == "content-type" && value.starts_with("application/grpc"))
    }
}

impl L7Request for H2Request {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Http2
    }

    fn allowed_by(&self, policy: &CompiledPolicy, remote_identity: u32) -> bool {
        let view = HttpRequestView::new(
            &self.method,
            &self.path,
            self.authority.as_deref(),
            &self.headers,
        );
        policy.allows_http(remote_identity, &view)
    }

    fn log_fields(&self) -> LogFields {
        LogFields {
            method: self.method.clone(),
            path: self.path.clone(),
            host: self.authority.clone(),
            topics: Vec::new(),
        }
    }
}

/// The client connection with the bytes read while sniffing the preface put back.
struct Prefixed {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let take = self.prefix.len().min(buf.remaining());
            let piece = self.prefix.split_to(take);
            buf.put_slice(&piece);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type UpstreamCell = Arc<OnceCell<SendRequest<Bytes>>>;

pub async fn serve(client: TcpStream, preread: Bytes, ctx: ConnContext) -> Result<(), ProxyError> {
    let mut connection = h2::server::handshake(Prefixed {
        prefix: preread,
        inner: client,
    })
    .await?;
    let upstream: UpstreamCell = Arc::new(OnceCell::new());
    while let Some(accepted) = connection.accept().await {
        let (request, respond) = accepted?;
        let ctx = ctx.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if let Err(err) = handle_stream(request, respond, &ctx, &upstream).await {
                eprintln!("cilium-proxy: http2 stream from {}: {err}", ctx.client);
            }
        });
    }
    Ok(())
}

async fn connect(ctx: &ConnContext) -> Result<SendRequest<Bytes>, ProxyError> {
    let addr = ctx.original_dst;
    let stream = connect_upstream(addr, upstream_options(ctx))
        .await
        .map_err(|source| ProxyError::Connect { addr, source })?;
    let (sender, connection) = h2::client::handshake(stream).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn handle_stream(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    ctx: &ConnContext,
    upstream: &UpstreamCell,
) -> Result<(), ProxyError> {
    let summary = H2Request::from_request(&request);
    if !ctx.request_filter(&summary) {
        deny(&summary, &mut respond)?;
        ctx.logging(&summary, L7Verdict::Denied, 403);
        return Ok(());
    }
    let sender = match upstream.get_or_try_init(|| connect(ctx)).await {
        Ok(sender) => sender.clone(),
        Err(err) => {
            let response = Response::builder()
                .status(503)
                .body(())
                .expect("static response");
            let _ = respond.send_response(response, true);
            ctx.logging(&summary, L7Verdict::Error, 503);
            return Err(err);
        }
    };
    let mut sender = sender.ready().await?;
    let (parts, body) = request.into_parts();
    let upstream_request = Request::from_parts(parts, ());
    let (response, upstream_body) = sender.send_request(upstream_request, body.is_end_stream())?;
    if !body.is_end_stream() {
        tokio::spawn(async move {
            let _ = pump(body, upstream_body).await;
        });
    }
    let response = response.await?;
    let (parts, body) = response.into_parts();
    let status = parts.status.as_u16();
    let end = body.is_end_stream();
    let downstream = respond.send_response(Response::from_parts(parts, ()), end)?;
    ctx.logging(&summary, L7Verdict::Forwarded, status);
    if !end {
        pump(body, downstream).await?;
    }
    Ok(())
}

fn deny(summary: &H2Request, respond: &mut SendResponse<Bytes>) -> Result<(), ProxyError> {
    if summary.is_grpc() {
        let response = Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("grpc-status", GRPC_PERMISSION_DENIED)
            .header("grpc-message", "Access denied")
            .body(())
            .expect("static response");
        respond.send_response(response, true)?;
        return Ok(());
    }
    let response = Response::builder()
        .status(403)
        .header("content-type", "text/plain")
        .header("content-length", DENIED_BODY.len())
        .body(())
        .expect("static response");
    let mut stream = respond.send_response(response, false)?;
    stream.send_data(Bytes::from_static(DENIED_BODY.as_bytes()), true)?;
    Ok(())
}

/// Copies a stream's data and trailers, returning flow-control credit as
/// data is passed on.
async fn pump(mut from: RecvStream, mut to: SendStream<Bytes>) -> Result<(), ProxyError> {
    while let Some(chunk) = from.data().await {
        let mut chunk = chunk?;
        let len = chunk.len();
        // Send only what the receiver's window allows, and give the sender
        // credit back only once its bytes have moved on: backpressure end to end.
        while !chunk.is_empty() {
            to.reserve_capacity(chunk.len());
            let granted = match std::future::poll_fn(|cx| to.poll_capacity(cx)).await {
                Some(granted) => granted?,
                None => return Err(ProxyError::Io(std::io::ErrorKind::BrokenPipe.into())),
            };
            let piece = chunk.split_to(granted.min(chunk.len()));
            to.send_data(piece, false)?;
        }
        let _ = from.flow_control().release_capacity(len);
    }
    match from.trailers().await? {
        Some(trailers) => to.send_trailers(trailers)?,
        None => to.send_data(Bytes::new(), true)?,
    }
    Ok(())
}
