//! One client stream: judge it, then answer it locally (denied) or send it
//! on the upstream connection and relay the response, data and trailers
//! unchanged.

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{Request, Response};

use super::request::H2Request;
use super::upstream::Upstream;
use crate::access_log::L7Verdict;
use crate::http1::proxy::{ProxyError, DENIED_BODY};

/// gRPC's PERMISSION_DENIED.
pub const GRPC_PERMISSION_DENIED: &str = "7";

pub async fn handle(
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    upstream: &Upstream,
) {
    if let Err(err) = forward(request, respond, upstream).await {
        eprintln!(
            "cilium-proxy: http2 stream from {}: {err}",
            upstream.ctx.client
        );
    }
}

async fn forward(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    upstream: &Upstream,
) -> Result<(), ProxyError> {
    let ctx = &upstream.ctx;
    let summary = H2Request::from_request(&request);
    if !ctx.request_filter(&summary) {
        deny(&summary, &mut respond)?;
        ctx.logging(&summary, L7Verdict::Denied, 403);
        return Ok(());
    }
    let sender = match upstream.sender().await {
        Ok(sender) => sender,
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
    let relay_response = async {
        let response = response.await?;
        let (parts, body) = response.into_parts();
        let status = parts.status.as_u16();
        let end = body.is_end_stream();
        let downstream = respond.send_response(Response::from_parts(parts, ()), end)?;
        ctx.logging(&summary, L7Verdict::Forwarded, status);
        if !end {
            pump(body, downstream).await?;
        }
        Ok::<(), ProxyError>(())
    };
    if body.is_end_stream() {
        return relay_response.await;
    }
    // The request body keeps flowing while the response is awaited and
    // relayed (a server may answer before the request ends); its failure
    // alone (the upstream reset the stream) is not the response's.
    let (_, relayed) = tokio::join!(pump(body, upstream_body), relay_response);
    relayed
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
/// data is passed on. The end of the stream rides on the last DATA frame
/// when that frame ended it upstream too (as it does for most responses):
/// an empty DATA frame just to say "end" would cost a frame per stream.
async fn pump(mut from: RecvStream, mut to: SendStream<Bytes>) -> Result<(), ProxyError> {
    while let Some(chunk) = from.data().await {
        let mut chunk = chunk?;
        let len = chunk.len();
        // Nothing follows this chunk: no more data, no trailers.
        let last = from.is_end_stream();
        // Send only what the receiver's window allows, and give the sender
        // credit back only once its bytes have moved on: backpressure end to end.
        while !chunk.is_empty() {
            to.reserve_capacity(chunk.len());
            let granted = match std::future::poll_fn(|cx| to.poll_capacity(cx)).await {
                Some(granted) => granted?,
                None => return Err(ProxyError::Io(std::io::ErrorKind::BrokenPipe.into())),
            };
            let piece = chunk.split_to(granted.min(chunk.len()));
            to.send_data(piece, last && chunk.is_empty())?;
        }
        let _ = from.flow_control().release_capacity(len);
        if last {
            if len == 0 {
                to.send_data(Bytes::new(), true)?;
            }
            return Ok(());
        }
    }
    match from.trailers().await? {
        Some(trailers) => to.send_trailers(trailers)?,
        None => to.send_data(Bytes::new(), true)?,
    }
    Ok(())
}
