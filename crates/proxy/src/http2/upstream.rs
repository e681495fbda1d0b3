//! The upstream HTTP/2 connection of a client connection, made when the
//! first allowed stream needs it. The stream that connects hands the
//! connection's I/O half to the client connection's driver (`super::serve`),
//! which polls it in the same task as everything else. When the upstream
//! closes it (an idle timeout, a restart), the next stream connects again.

use std::sync::Mutex;

use bytes::Bytes;
use h2::client::{Connection, SendRequest};
use tokio::net::TcpStream;
use tokio::sync::Mutex as AsyncMutex;

use crate::filter::ConnContext;
use crate::http1::proxy::ProxyError;
use crate::listener::connect_upstream;
use crate::redirect::upstream_options;

pub type UpstreamConnection = Connection<TcpStream, Bytes>;

pub struct Upstream {
    pub ctx: ConnContext,
    /// The live connection's request handle; emptied when it ends.
    sender: Mutex<Option<SendRequest<Bytes>>>,
    /// One stream connects at a time; the others then use its connection.
    connecting: AsyncMutex<()>,
    /// Made by a stream, not yet taken over by the driver.
    handover: Mutex<Option<UpstreamConnection>>,
}

impl Upstream {
    pub fn new(ctx: ConnContext) -> Self {
        Upstream {
            ctx,
            sender: Mutex::new(None),
            connecting: AsyncMutex::new(()),
            handover: Mutex::new(None),
        }
    }

    /// The request handle, connecting first if there is no live connection
    /// (a failed attempt is retried by the next stream).
    pub async fn sender(&self) -> Result<SendRequest<Bytes>, ProxyError> {
        if let Some(sender) = self.current() {
            return Ok(sender);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(sender) = self.current() {
            return Ok(sender);
        }
        let (sender, connection) = connect(&self.ctx).await?;
        *self.handover.lock().unwrap_or_else(|e| e.into_inner()) = Some(connection);
        *self.sender.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender.clone());
        Ok(sender)
    }

    fn current(&self) -> Option<SendRequest<Bytes>> {
        self.sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The driver saw the connection end: later streams make a new one.
    pub fn connection_ended(&self) {
        *self.sender.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Drops the request handle; returns a connection not yet handed over.
    pub fn into_connection(self) -> Option<UpstreamConnection> {
        self.handover
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The connection a stream has just made, for the driver to poll.
    pub fn take_connection(&self) -> Option<UpstreamConnection> {
        self.handover
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

async fn connect(
    ctx: &ConnContext,
) -> Result<(SendRequest<Bytes>, UpstreamConnection), ProxyError> {
    let addr = ctx.original_dst;
    let stream = connect_upstream(addr, upstream_options(ctx))
        .await
        .map_err(|source| ProxyError::Connect { addr, source })?;
    Ok(h2::client::Builder::new()
        .initial_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::CONNECTION_WINDOW)
        .handshake(stream)
        .await?)
}
