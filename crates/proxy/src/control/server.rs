//! The control socket server: accepts agent connections on a Unix socket,
//! applies their commands to the `ProxyState` and streams access-log events
//! and held DNS answers (`dns_answer`) back on every connection.

use std::io;
use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, watch};

use crate::control::protocol::{Command, Reply, Request, Status, PROTOCOL_VERSION};
use crate::redirect::ProxyState;

/// Longest command line accepted (a `sync` of a large cluster fits easily).
const MAX_LINE: usize = 64 << 20;

/// How often the writer looks for due DNS TTL refreshes (each waits at
/// most `REFRESH_EVERY` plus this).
const REFRESH_TICK: std::time::Duration = std::time::Duration::from_millis(250);

pub struct ControlServer {
    listener: UnixListener,
    state: ProxyState,
}

impl ControlServer {
    /// Binds `path`, replacing a stale socket file left by a previous run.
    pub fn bind(path: &Path, state: ProxyState) -> io::Result<Self> {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        Ok(ControlServer { listener, state })
    }

    pub async fn run(self) -> io::Result<()> {
        loop {
            let (stream, _) = self.listener.accept().await?;
            let state = self.state.clone();
            tokio::spawn(async move {
                if let Err(err) = serve_client(stream, state).await {
                    eprintln!("cilium-proxy: control client: {err}");
                }
            });
        }
    }
}

/// Applies one command; `Ok(Some(status))` for `hello` and `status`.
pub fn apply(state: &ProxyState, command: &Command) -> Result<Option<Status>, String> {
    let result = match command {
        Command::Hello { version } if *version != PROTOCOL_VERSION => {
            return Err(format!(
                "protocol version {version} is not supported (this proxy speaks {PROTOCOL_VERSION})"
            ))
        }
        Command::Hello { .. } | Command::Status => return Ok(Some(state.status())),
        Command::Sync { redirects, ipcache } => state.sync(redirects, ipcache),
        Command::UpsertRedirect { redirect } => state.upsert_redirect(redirect),
        Command::RemoveRedirect { proxy_port } => {
            state.remove_redirect(*proxy_port);
            Ok(())
        }
        Command::IpcacheUpsert { entries } => state.ipcache_upsert(entries),
        Command::IpcacheDelete { prefixes } => state.ipcache_delete(prefixes),
        // Per connection: `serve_client` handles it.
        Command::AccessLog { .. } => Ok(()),
        // An id no longer held (released by the timeout) is not an error.
        Command::DnsAnswerDone { id } => {
            state.dns.gate.release(*id);
            Ok(())
        }
    };
    result.map(|_| None).map_err(|err| err.to_string())
}

fn push_line(batch: &mut Vec<u8>, reply: &Reply) {
    serde_json::to_writer(&mut *batch, reply).expect("replies serialize");
    batch.push(b'\n');
}

async fn serve_client(stream: UnixStream, state: ProxyState) -> io::Result<()> {
    let (read_half, mut write_half) = stream.into_split();
    let (reply_tx, mut reply_rx) = mpsc::channel::<Reply>(256);
    let (wanted_tx, mut wanted_rx) = watch::channel(true);
    let mut subscription = state.log.subscribe();
    let mut dns_answers = state.dns.gate.subscribe();
    // One writer: replies and events interleave as whole lines; events
    // waiting together go out in one write.
    let dns = state.dns.clone();
    let writer = tokio::spawn(async move {
        let mut batch = Vec::new();
        // TTL refreshes the gate kept back go out in batches.
        let mut refreshes = tokio::time::interval(REFRESH_TICK);
        refreshes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            batch.clear();
            tokio::select! {
                _ = refreshes.tick() => {
                    for line in dns.gate.take_refreshes() {
                        push_line(&mut batch, &line);
                    }
                    if batch.is_empty() {
                        continue;
                    }
                }
                reply = reply_rx.recv() => match reply {
                    Some(reply) => push_line(&mut batch, &reply),
                    None => break,
                },
                changed = wanted_rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let wanted = *wanted_rx.borrow_and_update();
                    subscription.set_wanted(wanted);
                    continue;
                }
                event = subscription.events.recv() => match event {
                    Ok(event) => {
                        if !subscription.wanted() {
                            continue;
                        }
                        push_line(&mut batch, &Reply::AccessLog { event });
                        while let Ok(event) = subscription.events.try_recv() {
                            push_line(&mut batch, &Reply::AccessLog { event });
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                // A lost line only costs its answer the max delay.
                answer = dns_answers.recv() => match answer {
                    Ok(answer) => push_line(&mut batch, &answer),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            };
            if write_half.write_all(&batch).await.is_err() {
                break;
            }
        }
    });
    let mut reader = BufReader::new(read_half);
    let mut line = String::new();
    // Counted as an agent (held DNS answers wait for it) from its hello on.
    let mut agent = None;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await?;
        if read == 0 {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(Request {
                seq,
                command: Command::AccessLog { enabled },
            }) => {
                let _ = wanted_tx.send(enabled);
                Reply::Ack { seq, status: None }
            }
            Ok(request) => match apply(&state, &request.command) {
                Ok(status) => {
                    if matches!(request.command, Command::Hello { .. }) && agent.is_none() {
                        agent = Some(state.dns.gate.agent_connected());
                    }
                    Reply::Ack {
                        seq: request.seq,
                        status,
                    }
                }
                Err(message) => Reply::Error {
                    seq: request.seq,
                    message,
                },
            },
            Err(err) => Reply::Error {
                seq: 0,
                message: format!("malformed command: {err}"),
            },
        };
        if reply_tx.send(reply).await.is_err() {
            break;
        }
    }
    drop(agent);
    drop(reply_tx);
    let _ = writer.await;
    Ok(())
}
