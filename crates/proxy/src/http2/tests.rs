//! The whole HTTP/2 path in one process: an h2 client, `serve`, and an h2
//! upstream that echoes bodies and adds trailers.

use std::future::Future;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::access_log::{L7Protocol, RequestOutcome};
use crate::control::protocol::{Direction, Parser};
use crate::filter::ConnContext;
use crate::http1::proxy::ProxyError;

type UpstreamConnection = h2::server::Connection<TcpStream, Bytes>;

/// An h2 upstream on loopback: `serve_connection` runs for every connection.
async fn upstream<F, Fut>(serve_connection: F) -> SocketAddr
where
    F: Fn(UpstreamConnection) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let conn = h2::server::handshake(socket).await.unwrap();
            tokio::spawn(serve_connection(conn));
        }
    });
    addr
}

/// A client connection through `serve` with `ctx`: the request handle, the
/// client connection's task and the proxy's.
async fn proxied_client(
    ctx: ConnContext,
) -> (
    h2::client::SendRequest<Bytes>,
    JoinHandle<Result<(), h2::Error>>,
    JoinHandle<Result<(), ProxyError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    let proxy = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        super::serve(socket, Bytes::new(), ctx).await
    });
    let socket = TcpStream::connect(proxy_addr).await.unwrap();
    let (client, connection) = h2::client::handshake(socket).await.unwrap();
    (client, tokio::spawn(connection), proxy)
}

/// Answers every stream with its body and an `x-echoed` trailer.
async fn echo_upstream() -> SocketAddr {
    upstream(|mut conn: UpstreamConnection| async move {
        while let Some(Ok((request, mut respond))) = conn.accept().await {
            tokio::spawn(async move {
                let mut body = request.into_body();
                let mut echoed = BytesMut::new();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.unwrap();
                    let _ = body.flow_control().release_capacity(chunk.len());
                    echoed.extend_from_slice(&chunk);
                }
                let mut send = respond.send_response(Response::new(()), false).unwrap();
                let mut echoed = echoed.freeze();
                while !echoed.is_empty() {
                    send.reserve_capacity(echoed.len());
                    let granted = std::future::poll_fn(|cx| send.poll_capacity(cx))
                        .await
                        .unwrap()
                        .unwrap();
                    send.send_data(echoed.split_to(granted), false).unwrap();
                }
                let mut trailers = HeaderMap::new();
                trailers.insert("x-echoed", "yes".parse().unwrap());
                send.send_trailers(trailers).unwrap();
            });
        }
    })
    .await
}

fn context(upstream: SocketAddr) -> ConnContext {
    crate::filter::test_context(
        Parser::Http,
        Direction::Ingress,
        r#"[{"identity": 0, "rules": {"http": [{"path": "/allowed"}]}}]"#,
        upstream,
    )
}

async fn read_body(body: &mut h2::RecvStream) -> Bytes {
    let mut out = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    out.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_are_judged_one_by_one_and_relayed_unchanged() {
    let ctx = context(echo_upstream().await);
    let log = ctx.log.clone();
    let (client, connection, proxy) = proxied_client(ctx).await;
    let mut calls = Vec::new();
    for i in 0..40usize {
        let mut client = client.clone().ready().await.unwrap();
        calls.push(tokio::spawn(async move {
            if i % 2 == 1 {
                let request = Request::get("http://upstream/denied").body(()).unwrap();
                let (response, _) = client.send_request(request, true).unwrap();
                let response = response.await.unwrap();
                assert_eq!(response.status(), 403);
                let mut body = response.into_body();
                assert_eq!(read_body(&mut body).await, "Access denied\r\n");
                return;
            }
            // Larger than the proxy's stream window (and, all streams
            // together, its connection window) and than the 64 KiB windows
            // of this client and the upstream, so flow control is exercised
            // in both directions on both connections.
            let size = super::STREAM_WINDOW as usize + 100_000 + i;
            let payload: Bytes = (0..size).map(|b| (b * 7 + i) as u8).collect();
            let request = Request::post("http://upstream/allowed").body(()).unwrap();
            let (response, mut send) = client.send_request(request, false).unwrap();
            let mut rest = payload.clone();
            while !rest.is_empty() {
                send.reserve_capacity(rest.len());
                let granted = std::future::poll_fn(|cx| send.poll_capacity(cx))
                    .await
                    .unwrap()
                    .unwrap();
                send.send_data(rest.split_to(granted), false).unwrap();
            }
            send.send_data(Bytes::new(), true).unwrap();
            let response = response.await.unwrap();
            assert_eq!(response.status(), 200);
            let mut body = response.into_body();
            assert_eq!(read_body(&mut body).await, payload, "stream {i}");
            let trailers = body.trailers().await.unwrap().expect("trailers");
            assert_eq!(trailers["x-echoed"], "yes");
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    let counted: Vec<_> = log
        .counters()
        .snapshot()
        .iter()
        .map(|c| (c.protocol, c.outcome, c.count))
        .collect();
    assert_eq!(
        counted,
        [
            (L7Protocol::Http2, RequestOutcome::Forwarded, 20),
            (L7Protocol::Http2, RequestOutcome::Denied, 20)
        ]
    );
    // The client leaving ends the connection's task.
    drop(client);
    connection.await.unwrap().unwrap();
    proxy.await.unwrap().unwrap();
}

/// Answers one stream per connection with 200, then closes the connection
/// (as an upstream's idle timeout or restart would).
async fn one_stream_per_connection_upstream() -> SocketAddr {
    upstream(|mut conn: UpstreamConnection| async move {
        if let Some(Ok((_request, mut respond))) = conn.accept().await {
            let mut send = respond.send_response(Response::new(()), false).unwrap();
            send.send_data(Bytes::from_static(b"ok"), true).unwrap();
        }
        conn.graceful_shutdown();
        while conn.accept().await.is_some() {}
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_upstream_connection_is_made_again_for_the_next_request() {
    let ctx = context(one_stream_per_connection_upstream().await);
    let (client, _connection, _proxy) = proxied_client(ctx).await;
    for round in 0..3 {
        let mut client = client.clone().ready().await.unwrap();
        let request = Request::get("http://upstream/allowed").body(()).unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200, "request {round}");
        let mut body = response.into_body();
        assert_eq!(read_body(&mut body).await, "ok");
        // Let the upstream's close reach the proxy.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
