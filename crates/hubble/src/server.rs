//! Cilium's Observer gRPC service over the flow ring: `GetFlows` (history
//! by `number`/`first`/`since`/`until`, then `follow`), `ServerStatus` and
//! `GetNodes`, on a unix socket and optionally TCP.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures_util::{stream, Stream, StreamExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

use crate::filter::FlowFilters;
use crate::proto::flow::{Flow, LostEvent, LostEventSource};
use crate::proto::health::{
    health_check_response::ServingStatus,
    health_server::{Health, HealthServer},
    HealthCheckRequest, HealthCheckResponse,
};
use crate::proto::observer::{
    get_flows_response::ResponseTypes,
    observer_server::{self, ObserverServer},
    GetFlowsRequest, GetFlowsResponse, GetNodesRequest, GetNodesResponse, Node,
    ServerStatusRequest, ServerStatusResponse, Tls,
};
use crate::proto::relay::NodeState;
use crate::ring::FlowRing;
use crate::shared_flow::SharedFlow;
use crate::timestamp::Timestamp;

/// Reported as the server's version (`hubble status`, `hubble list nodes`).
const VERSION: &str = concat!("cilium-rs ", env!("CARGO_PKG_VERSION"));

#[derive(Clone)]
pub struct Observer {
    ring: Arc<FlowRing>,
    node_name: String,
    started: Instant,
}

impl Observer {
    pub fn new(ring: Arc<FlowRing>, node_name: String) -> Self {
        Observer {
            ring,
            node_name,
            started: Instant::now(),
        }
    }

    fn uptime_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    fn response(&self, r: ResponseTypes) -> GetFlowsResponse {
        GetFlowsResponse {
            response_types: Some(r),
            node_name: self.node_name.clone(),
            time: Some(now()),
        }
    }
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

fn key(t: &Timestamp) -> (i64, i32) {
    (t.seconds, t.nanos)
}

/// Which stored flows a request reads, in order: with `first`, the oldest
/// `number` matching ones; else the newest `number`; with `number` 0, all
/// of them unless the client only follows (then none: it wants new ones).
pub fn select_history(
    flows: &[Arc<Flow>],
    req: &GetFlowsRequest,
    filters: &FlowFilters,
) -> Vec<Arc<Flow>> {
    let in_time = |f: &Flow| {
        let t = f.time.as_ref().map(key).unwrap_or_default();
        req.since.as_ref().is_none_or(|s| t >= key(s))
            && req.until.as_ref().is_none_or(|u| t <= key(u))
    };
    let matching = flows
        .iter()
        .filter(|f| in_time(f) && filters.matches(f))
        .cloned();
    let n = usize::try_from(req.number).unwrap_or(usize::MAX);
    if req.first {
        return matching.take(if n == 0 { usize::MAX } else { n }).collect();
    }
    if n == 0 && req.follow && req.since.is_none() {
        return Vec::new();
    }
    let all: Vec<Arc<Flow>> = matching.collect();
    if n == 0 || n >= all.len() {
        return all;
    }
    all[all.len() - n..].to_vec()
}

type FlowStream = Pin<Box<dyn Stream<Item = Result<GetFlowsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl observer_server::Observer for Observer {
    type GetFlowsStream = FlowStream;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<FlowStream>, Status> {
        let req = request.into_inner();
        let filters =
            FlowFilters::new(&req.whitelist, &req.blacklist).map_err(Status::invalid_argument)?;
        let snapshot = self.ring.snapshot(req.follow);
        let history = select_history(&snapshot.flows, &req, &filters);
        let me = self.clone();
        let past = {
            let me = me.clone();
            stream::iter(history).map(move |f| Ok(me.response(ResponseTypes::Flow(SharedFlow(f)))))
        };
        let Some(rx) = snapshot.follow else {
            return Ok(Response::new(Box::pin(past)));
        };
        let until = req.until.as_ref().map(key);
        let live = stream::unfold((rx, filters, me), move |(mut rx, filters, me)| async move {
            loop {
                let out = match rx.recv().await {
                    Ok(f) => {
                        let t = f.time.as_ref().map(key).unwrap_or_default();
                        if until.is_some_and(|u| t > u) {
                            return None;
                        }
                        if !filters.matches(&f) {
                            continue;
                        }
                        me.response(ResponseTypes::Flow(SharedFlow(f)))
                    }
                    Err(RecvError::Lagged(n)) => {
                        me.response(ResponseTypes::LostEvents(LostEvent {
                            source: LostEventSource::HubbleRingBuffer as i32,
                            num_events_lost: n,
                            cpu: None,
                        }))
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(out), (rx, filters, me)));
            }
        });
        Ok(Response::new(Box::pin(past.chain(live))))
    }

    async fn get_nodes(
        &self,
        _request: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        Ok(Response::new(GetNodesResponse {
            nodes: vec![Node {
                name: self.node_name.clone(),
                version: VERSION.into(),
                address: String::new(),
                state: NodeState::NodeConnected as i32,
                tls: Some(Tls::default()),
                uptime_ns: self.uptime_ns(),
                num_flows: self.ring.len() as u64,
                max_flows: self.ring.capacity() as u64,
                seen_flows: self.ring.seen(),
            }],
        }))
    }

    async fn server_status(
        &self,
        _request: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        let uptime = self.started.elapsed().as_secs_f64();
        let seen = self.ring.seen();
        Ok(Response::new(ServerStatusResponse {
            num_flows: self.ring.len() as u64,
            max_flows: self.ring.capacity() as u64,
            seen_flows: seen,
            uptime_ns: self.uptime_ns(),
            num_connected_nodes: Some(1),
            num_unavailable_nodes: Some(0),
            unavailable_nodes: Vec::new(),
            version: VERSION.into(),
            flows_rate: if uptime > 0.0 {
                seen as f64 / uptime
            } else {
                0.0
            },
        }))
    }
}

/// gRPC's health check: the Observer serves whenever the agent runs.
#[derive(Clone, Copy)]
struct Serving;

#[tonic::async_trait]
impl Health for Serving {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }
}

/// Serves on a unix socket, replacing a stale socket file, until the task
/// is dropped.
pub async fn serve_unix(observer: Observer, path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    let incoming = stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(s, _)| s);
        Some((conn, l))
    });
    serve(observer, incoming).await
}

/// Serves on an already bound TCP listener.
pub async fn serve_tcp(observer: Observer, listener: TcpListener) -> std::io::Result<()> {
    let incoming = stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(s, _)| s);
        Some((conn, l))
    });
    serve(observer, incoming).await
}

/// The Observer and gRPC health services on the connections `incoming`
/// yields.
async fn serve<S, IO>(observer: Observer, incoming: S) -> std::io::Result<()>
where
    S: futures_util::Stream<Item = std::io::Result<IO>>,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
{
    tonic::transport::Server::builder()
        .add_service(ObserverServer::new(observer))
        .add_service(HealthServer::new(Serving))
        .serve_with_incoming(incoming)
        .await
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flows(n: u32) -> Vec<Arc<Flow>> {
        (0..n)
            .map(|i| {
                Arc::new(Flow {
                    drop_reason: i,
                    time: Some(Timestamp {
                        seconds: 1000 + i64::from(i),
                        nanos: 0,
                    }),
                    ..Default::default()
                })
            })
            .collect()
    }

    fn ids(v: &[Arc<Flow>]) -> Vec<u32> {
        v.iter().map(|f| f.drop_reason).collect()
    }

    fn pick(req: GetFlowsRequest) -> Vec<u32> {
        ids(&select_history(&flows(10), &req, &FlowFilters::default()))
    }

    #[test]
    fn last_first_since_until_follow() {
        let last3 = GetFlowsRequest {
            number: 3,
            ..Default::default()
        };
        assert_eq!(pick(last3), [7, 8, 9]);
        let first2 = GetFlowsRequest {
            number: 2,
            first: true,
            ..Default::default()
        };
        assert_eq!(pick(first2), [0, 1]);
        let ts = |s| {
            Some(Timestamp {
                seconds: s,
                nanos: 0,
            })
        };
        let window = GetFlowsRequest {
            since: ts(1003),
            until: ts(1005),
            ..Default::default()
        };
        assert_eq!(pick(window), [3, 4, 5]);
        let follow_only = GetFlowsRequest {
            follow: true,
            ..Default::default()
        };
        assert!(pick(follow_only).is_empty());
        let follow_last = GetFlowsRequest {
            follow: true,
            number: 1,
            ..Default::default()
        };
        assert_eq!(pick(follow_last), [9]);
        let more_than_stored = GetFlowsRequest {
            number: 100,
            ..Default::default()
        };
        assert_eq!(pick(more_than_stored).len(), 10);
    }

    #[test]
    fn last_n_counts_matching_flows_only() {
        use crate::proto::flow::FlowFilter;
        let all = flows(10);
        let odd: Vec<Arc<Flow>> = all
            .iter()
            .map(|f| {
                let mut f = (**f).clone();
                f.verdict = (f.drop_reason % 2) as i32 + 1;
                Arc::new(f)
            })
            .collect();
        let filters = FlowFilters::new(
            &[FlowFilter {
                verdict: vec![2],
                ..Default::default()
            }],
            &[],
        )
        .unwrap();
        let req = GetFlowsRequest {
            number: 2,
            ..Default::default()
        };
        assert_eq!(ids(&select_history(&odd, &req, &filters)), [7, 9]);
    }
}
