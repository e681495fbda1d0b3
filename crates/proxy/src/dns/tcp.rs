//! DNS over TCP (RFC 7766): messages framed by a 2-byte length, several per
//! connection. Queries are handled one at a time, in order; allowed ones
//! share one upstream connection to the original destination, opened at
//! the first of them. A connection idle for `IDLE_TIMEOUT` is closed.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::exchange::{admit_answer, answers, judge, server_failure, Judgement};
use super::wire::Message;
use super::{DnsRuntime, FORWARD_TIMEOUT};
use crate::filter::ConnContext;
use crate::listener::connect_upstream;
use crate::redirect::upstream_options;

/// How long a client connection may sit between queries.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads one length-prefixed message; `None` on a clean close between them.
pub async fn read_message<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    reader.read_exact(&mut message).await?;
    Ok(Some(message))
}

pub async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &[u8],
) -> io::Result<()> {
    let len = u16::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "DNS message over 64 KiB"))?;
    let mut framed = Vec::with_capacity(2 + message.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    writer.write_all(&framed).await
}

pub async fn serve(
    mut client: TcpStream,
    ctx: ConnContext,
    dns: &DnsRuntime,
) -> anyhow::Result<()> {
    let mut upstream: Option<TcpStream> = None;
    loop {
        let query = match tokio::time::timeout(IDLE_TIMEOUT, read_message(&mut client)).await {
            Err(_) | Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(query))) => query,
            Ok(Err(err)) => return Err(err.into()),
        };
        let message = match judge(&ctx, dns, &query) {
            // The framing still holds: go on with the next message.
            Judgement::Drop => continue,
            Judgement::Answer(answer) => {
                write_message(&mut client, &answer).await?;
                continue;
            }
            Judgement::Forward(message) => message,
        };
        match forward(&ctx, dns, &mut upstream, &message, &query).await {
            Ok(Some(answer)) => write_message(&mut client, &answer).await?,
            Ok(None) => {}
            Err(err) => {
                eprintln!(
                    "cilium-proxy: dns query from {} to {}: {err}",
                    ctx.client, ctx.original_dst
                );
                // A fresh upstream connection for the next query.
                upstream = None;
                write_message(&mut client, &server_failure(&query, &message)).await?;
            }
        }
    }
}

/// Sends the query upstream and reads messages until its answer; `None`
/// when that answer was malformed (dropped and counted).
async fn forward(
    ctx: &ConnContext,
    dns: &DnsRuntime,
    upstream: &mut Option<TcpStream>,
    message: &Message,
    query: &[u8],
) -> io::Result<Option<Vec<u8>>> {
    let exchange = async {
        if upstream.is_none() {
            *upstream = Some(connect_upstream(ctx.original_dst, upstream_options(ctx)).await?);
        }
        let stream = upstream
            .as_mut()
            .ok_or_else(|| io::Error::other("no upstream connection"))?;
        write_message(stream, query).await?;
        loop {
            match read_message(stream).await? {
                Some(answer) if answers(message, &answer) => return Ok(answer),
                Some(_) => continue,
                None => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            }
        }
    };
    let answer = tokio::time::timeout(FORWARD_TIMEOUT, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))??;
    Ok(admit_answer(ctx, dns, message, &answer)
        .await
        .then_some(answer))
}
