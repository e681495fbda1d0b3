//! One Kafka client connection. Requests are read frame by frame, judged,
//! and either forwarded unchanged or answered locally. Kafka answers in
//! request order, so a single writer emits, in order, either the next
//! upstream response or the next locally built one.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::request::parse_request;
use super::response::denied_response;
use super::{KafkaError, MAX_REQUEST_BYTES, TOPIC_AUTHORIZATION_FAILED};
use crate::access_log::{L7Protocol, L7Verdict};
use crate::filter::{ConnContext, Malformed};
use crate::listener::connect_upstream;
use crate::redirect::upstream_options;

#[derive(Debug, thiserror::Error)]
pub enum KafkaProxyError {
    #[error("malformed request: {0}")]
    Malformed(#[from] KafkaError),
    #[error("denied {api} request cannot be answered locally; closing")]
    Unanswerable { api: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What the client gets next, in request order.
enum Pending {
    Upstream,
    Local(Vec<u8>),
}

/// Reads one size-prefixed frame; `Ok(None)` on a clean close between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<Vec<u8>>, KafkaProxyError> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err.into()),
    }
    let size = i32::from_be_bytes(size);
    if size < 8 || size as usize > MAX_REQUEST_BYTES {
        return Err(KafkaError::FrameSize(i64::from(size)).into());
    }
    let mut payload = vec![0u8; size as usize];
    reader.read_exact(&mut payload).await?;
    Ok(Some(payload))
}

pub async fn serve(client: TcpStream, ctx: ConnContext) -> Result<(), anyhow::Error> {
    let addr = ctx.original_dst;
    let upstream = connect_upstream(addr, upstream_options(&ctx))
        .await
        .map_err(|source| KafkaProxyError::Connect { addr, source })?;
    let (mut client_reader, mut client_writer) = client.into_split();
    let (mut upstream_reader, mut upstream_writer) = upstream.into_split();
    let (pending_tx, mut pending_rx) = mpsc::channel::<Pending>(1024);

    let writer = async move {
        while let Some(next) = pending_rx.recv().await {
            match next {
                Pending::Local(frame) => client_writer.write_all(&frame).await?,
                Pending::Upstream => {
                    let mut size = [0u8; 4];
                    upstream_reader.read_exact(&mut size).await?;
                    let len = u32::from_be_bytes(size);
                    client_writer.write_all(&size).await?;
                    let copied = tokio::io::copy(
                        &mut (&mut upstream_reader).take(u64::from(len)),
                        &mut client_writer,
                    )
                    .await?;
                    if copied != u64::from(len) {
                        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                    }
                }
            }
        }
        client_writer.shutdown().await
    };

    let reader = async move {
        let result =
            forward_requests(&mut client_reader, &mut upstream_writer, &pending_tx, &ctx).await;
        drop(pending_tx);
        let _ = upstream_writer.shutdown().await;
        result
    };
    tokio::pin!(reader, writer);
    let (read_result, write_result) = tokio::select! {
        // The client is done sending: deliver the responses still owed.
        read_result = &mut reader => (read_result, writer.await),
        // The upstream or the client went away: nothing more can be answered,
        // so stop reading requests (dropping the reader closes the client).
        write_result = &mut writer => (Ok(()), write_result),
    };
    read_result?;
    // The writer failing because a peer left is not worth reporting.
    if let Err(err) = write_result {
        if err.kind() != io::ErrorKind::UnexpectedEof {
            return Err(err.into());
        }
    }
    Ok(())
}

async fn forward_requests(
    client: &mut tokio::net::tcp::OwnedReadHalf,
    upstream: &mut tokio::net::tcp::OwnedWriteHalf,
    pending: &mpsc::Sender<Pending>,
    ctx: &ConnContext,
) -> Result<(), KafkaProxyError> {
    loop {
        let payload = match read_frame(client).await {
            Ok(Some(payload)) => payload,
            Ok(None) => return Ok(()),
            Err(err) => {
                ctx.logging(&Malformed(L7Protocol::Kafka), L7Verdict::Error, 0);
                return Err(err);
            }
        };
        let request = match parse_request(&payload) {
            Ok(request) => request,
            Err(err) => {
                ctx.logging(&Malformed(L7Protocol::Kafka), L7Verdict::Error, 0);
                return Err(err.into());
            }
        };
        let next = if ctx.request_filter(&request) {
            upstream
                .write_all(&(payload.len() as u32).to_be_bytes())
                .await?;
            upstream.write_all(&payload).await?;
            ctx.logging(&request, L7Verdict::Forwarded, 0);
            request.expects_response().then_some(Pending::Upstream)
        } else {
            ctx.logging(
                &request,
                L7Verdict::Denied,
                TOPIC_AUTHORIZATION_FAILED as u16,
            );
            if !request.expects_response() {
                None
            } else {
                match denied_response(&request) {
                    Some(frame) => Some(Pending::Local(frame)),
                    None => {
                        return Err(KafkaProxyError::Unanswerable {
                            api: request.api_name(),
                        })
                    }
                }
            }
        };
        if let Some(next) = next {
            if pending.send(next).await.is_err() {
                return Ok(());
            }
        }
    }
}
