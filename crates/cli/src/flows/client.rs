//! The IO of `cilium flows`: dialing the Hubble Observer (a unix socket,
//! as the agent serves it, or TCP) and reading the `GetFlows` stream.

use std::future::Future;
use std::path::PathBuf;
use std::task::{Context as TaskContext, Poll, Waker};

use anyhow::{bail, Context, Result};
use hubble::proto::observer::{observer_client::ObserverClient, GetFlowsRequest, GetFlowsResponse};
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// The agent's default `--hubble-socket-path`.
pub const DEFAULT_SERVER: &str = "unix:///var/run/cilium/hubble.sock";

/// Where `--server` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    Unix(PathBuf),
    /// `http://host:port`.
    Tcp(String),
}

/// `unix:///path`, an absolute path, `host:port` or `http://host:port`
/// (hubble's spellings; TLS is not offered).
pub fn parse_server(text: &str) -> Result<Server> {
    if let Some(path) = text.strip_prefix("unix://") {
        return Ok(Server::Unix(PathBuf::from(path)));
    }
    if text.starts_with('/') {
        return Ok(Server::Unix(PathBuf::from(text)));
    }
    if text.starts_with("https://") || text.starts_with("tls://") {
        bail!("--server {text}: TLS is not supported, use unix:// or a plain host:port");
    }
    let hostport = text.strip_prefix("http://").unwrap_or(text);
    if hostport.is_empty() || !hostport.contains(':') {
        bail!("--server {text}: expected unix:///path or host:port");
    }
    Ok(Server::Tcp(format!("http://{hostport}")))
}

async fn connect(server: &Server) -> Result<Channel> {
    match server {
        Server::Unix(path) => {
            if !path.exists() {
                bail!(
                    "no Hubble server at unix://{}: is Hubble enabled on the agent \
                     (cilium-agent --enable-hubble true, --hubble-socket-path)?",
                    path.display()
                );
            }
            let path = path.clone();
            // The URI is a placeholder: every connection goes to the socket.
            Endpoint::from_static("http://hubble.local")
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                }))
                .await
                .with_context(|| format!("connecting to the Hubble server at {server:?}"))
        }
        Server::Tcp(uri) => Endpoint::from_shared(uri.clone())?
            .connect()
            .await
            .with_context(|| format!("connecting to the Hubble server at {uri}")),
    }
}

/// Calls `GetFlows` and hands every response to `each` until the stream
/// ends (or `each` says stop). `idle` runs whenever the next response has
/// not arrived yet, so the caller can buffer its output while responses
/// come in bursts and flush it before waiting.
pub fn get_flows(
    server: &Server,
    request: GetFlowsRequest,
    mut each: impl FnMut(GetFlowsResponse) -> Result<bool>,
    mut idle: impl FnMut(),
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let channel = connect(server).await?;
        let mut stream = ObserverClient::new(channel)
            .get_flows(request)
            .await
            .map_err(|s| anyhow::anyhow!("GetFlows: {}", s.message()))?
            .into_inner();
        loop {
            // `message` is cancel-safe: a pending poll leaves the stream as it was.
            let next = match ready_now(stream.message()) {
                Some(next) => next,
                None => {
                    idle();
                    stream.message().await
                }
            };
            let next = next.map_err(|s| anyhow::anyhow!("GetFlows stream: {}", s.message()))?;
            let Some(response) = next else { break };
            if !each(response)? {
                break;
            }
        }
        Ok(())
    })
}

/// The future's output if it is ready at the first poll.
fn ready_now<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = TaskContext::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_spellings() {
        assert_eq!(
            parse_server("unix:///run/h.sock").unwrap(),
            Server::Unix("/run/h.sock".into())
        );
        assert_eq!(
            parse_server("/run/h.sock").unwrap(),
            Server::Unix("/run/h.sock".into())
        );
        assert_eq!(
            parse_server("localhost:4245").unwrap(),
            Server::Tcp("http://localhost:4245".into())
        );
        assert_eq!(
            parse_server("http://127.0.0.1:4245").unwrap(),
            Server::Tcp("http://127.0.0.1:4245".into())
        );
        assert!(parse_server("tls://x:1").is_err());
        assert!(parse_server("nowhere").is_err());
    }
}
