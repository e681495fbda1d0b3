//! cilium-proxy's lifetime and configuration. The proxy is started detached
//! (its own session, not the agent's child in any way that matters), so an
//! agent restart never cuts proxied connections: the next agent finds it on
//! its control socket and sends it the full desired state again. A proxy that
//! dies is started anew by the supervisor and re-synced the same way.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use proxy::access_log::RequestCount;
use proxy::control::protocol::{Command as ProxyCommand, Reply, Request};
use proxy::dns::gate::REFRESH_ID;
use proxy::PROTOCOL_VERSION;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
    sync::watch,
};

use super::DesiredState;
use crate::monitor::MonitorHub;

/// What `cilium status` says about the proxy.
#[derive(Debug, Clone, Default)]
pub struct ProxyHealth {
    pub connected: bool,
    pub pid: Option<u32>,
    pub redirects: usize,
    /// The last error, cleared by a successful sync.
    pub error: Option<String>,
    /// The proxy's request counters as of its last `status` reply.
    pub requests: Vec<RequestCount>,
}

/// How often the proxy is asked for its status (request counters): cheap,
/// one short line each way.
const STATUS_EVERY: Duration = Duration::from_secs(2);

pub struct Supervisor {
    pub socket: PathBuf,
    pub binary: PathBuf,
    pub log: PathBuf,
    /// Where the started proxy's pid is written (for operators and tests).
    pub pid_file: PathBuf,
    /// Extra arguments for a proxy this supervisor starts.
    pub args: Vec<String>,
    /// Applies DNS answers the proxy told of, a batch at a time (blocking:
    /// it writes the datapath); the proxy releases the held ones once it
    /// returns.
    pub dns_answers: DnsAnswers,
}

/// What a held DNS answer says: endpoint, the names (query and CNAME
/// targets), the IPs and their TTL.
pub struct DnsAnswer {
    pub endpoint: u16,
    pub names: Vec<String>,
    pub ips: Vec<std::net::IpAddr>,
    pub ttl: u32,
}

pub type DnsAnswers = Arc<dyn Fn(Vec<DnsAnswer>) + Send + Sync>;

impl Supervisor {
    /// Runs forever: connect (starting the proxy when nobody answers), hello,
    /// sync, then sync again whenever the desired state changes.
    pub async fn run(
        self,
        mut desired: watch::Receiver<DesiredState>,
        health: Arc<Mutex<ProxyHealth>>,
        hub: MonitorHub,
    ) {
        loop {
            // The proxy is started only once some redirect needs it; one that
            // already runs (from before an agent restart) is synced anyway.
            let needed = !desired.borrow().redirects.is_empty();
            if !needed && UnixStream::connect(&self.socket).await.is_err() {
                let _ = tokio::time::timeout(Duration::from_secs(2), desired.changed()).await;
                continue;
            }
            let stream = match self.connect_or_start().await {
                Ok(stream) => stream,
                Err(e) => {
                    eprintln!("level=warning msg=\"proxy: {e}\"");
                    update(&health, |h| {
                        h.connected = false;
                        h.error = Some(e);
                    });
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let why = session(stream, &mut desired, &health, &hub, &self.dns_answers).await;
            eprintln!("level=warning msg=\"proxy: control connection lost: {why}\"");
            update(&health, |h| {
                h.connected = false;
                h.error = Some(why);
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn connect_or_start(&self) -> Result<UnixStream, String> {
        if let Ok(stream) = UnixStream::connect(&self.socket).await {
            return Ok(stream);
        }
        self.start()?;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok(stream) = UnixStream::connect(&self.socket).await {
                return Ok(stream);
            }
        }
        Err(format!(
            "started {} but {} does not answer (see {})",
            self.binary.display(),
            self.socket.display(),
            self.log.display()
        ))
    }

    fn start(&self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("opening {}: {e}", self.log.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("opening {}: {e}", self.log.display()))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("--config-socket")
            .arg(&self.socket)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // SAFETY: setsid is async-signal-safe and touches no memory.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.binary.display()))?;
        eprintln!(
            "level=info msg=\"proxy: started {} (pid {})\"",
            self.binary.display(),
            child.id()
        );
        if let Err(e) = std::fs::write(&self.pid_file, child.id().to_string()) {
            eprintln!(
                "level=warning msg=\"proxy: writing {}: {e}\"",
                self.pid_file.display()
            );
        }
        // Reaped by nobody on purpose: it must outlive this agent. A
        // thread waits for it so it does not linger as a zombie meanwhile.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        Ok(())
    }
}

/// One control connection, until it fails; returns why.
async fn session(
    stream: UnixStream,
    desired: &mut watch::Receiver<DesiredState>,
    health: &Mutex<ProxyHealth>,
    hub: &MonitorHub,
    dns_answers: &DnsAnswers,
) -> String {
    let (read, mut write) = stream.into_split();
    // DNS answers go to one applier, which takes whatever queued up while
    // it worked as one batch; the held ones' ids come back here.
    let (answers_tx, answers_rx) = tokio::sync::mpsc::unbounded_channel();
    let (applied_tx, mut applied) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let _applier = AbortOnDrop(tokio::spawn(apply_answers(
        answers_rx,
        dns_answers.clone(),
        applied_tx,
    )));
    let mut lines = BufReader::new(read).lines();
    let mut seq = 0u64;
    let mut send = |command: ProxyCommand| {
        seq += 1;
        let mut line = serde_json::to_string(&Request { seq, command }).expect("serializable");
        line.push('\n');
        line
    };
    let hello = send(ProxyCommand::Hello {
        version: PROTOCOL_VERSION,
    });
    if let Err(e) = write.write_all(hello.as_bytes()).await {
        return e.to_string();
    }
    desired.mark_changed();
    // What this proxy was sent: the next change goes as a difference.
    let mut sent: Option<DesiredState> = None;
    // Access-log events cost the proxy and the agent per request: ask for
    // them only while some monitor client listens.
    let mut subscriptions = hub.subscriptions();
    let mut recheck = tokio::time::interval(Duration::from_secs(1));
    let mut poll_status = tokio::time::interval(STATUS_EVERY);
    let mut events_wanted = None;
    loop {
        let wanted = hub.has_listeners();
        if events_wanted != Some(wanted) {
            let line = send(ProxyCommand::AccessLog { enabled: wanted });
            if let Err(e) = write.write_all(line.as_bytes()).await {
                return e.to_string();
            }
            events_wanted = Some(wanted);
        }
        tokio::select! {
            // A configuration change goes out before the go-ahead for the
            // answer that caused it: the proxy applies lines in order.
            biased;
            changed = desired.changed() => {
                if changed.is_err() {
                    return "the agent is shutting down".into();
                }
                let state = desired.borrow_and_update().clone();
                let commands = super::commands_between(sent.as_ref(), &state);
                if matches!(commands.first(), Some(ProxyCommand::Sync { .. })) {
                    eprintln!(
                        "level=info msg=\"proxy: configuring {} redirects, {} ipcache entries\"",
                        state.redirects.len(),
                        state.ipcache.len()
                    );
                }
                let batch: String = commands.into_iter().map(&mut send).collect();
                if let Err(e) = write.write_all(batch.as_bytes()).await {
                    return e.to_string();
                }
                update(health, |h| h.redirects = state.redirects.len());
                sent = Some(state);
            }
            Some(id) = applied.recv() => {
                let mut batch = send(ProxyCommand::DnsAnswerDone { id });
                while let Ok(id) = applied.try_recv() {
                    batch.push_str(&send(ProxyCommand::DnsAnswerDone { id }));
                }
                if let Err(e) = write.write_all(batch.as_bytes()).await {
                    return e.to_string();
                }
            }
            _ = subscriptions.changed() => {}
            _ = recheck.tick() => {}
            _ = poll_status.tick() => {
                let line = send(ProxyCommand::Status);
                if let Err(e) = write.write_all(line.as_bytes()).await {
                    return e.to_string();
                }
            }
            line = lines.next_line() => {
                let line = match line {
                    Ok(Some(line)) => line,
                    Ok(None) => return "the proxy closed the connection".into(),
                    Err(e) => return e.to_string(),
                };
                match serde_json::from_str::<Reply>(&line) {
                    Ok(Reply::AccessLog { event }) => hub.publish(crate::monitor::l7_model(&event)),
                    Ok(Reply::DnsAnswer { id, endpoint_id, name, ips, ttl, cnames, .. }) => {
                        let answer = DnsAnswer {
                            endpoint: u16::try_from(endpoint_id).unwrap_or(0),
                            names: std::iter::once(name).chain(cnames).collect(),
                            ips: ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
                            ttl,
                        };
                        if answers_tx.send((id, answer)).is_err() {
                            return "the DNS answer applier stopped".into();
                        }
                    }
                    Ok(Reply::Ack { status, .. }) => update(health, |h| {
                        h.connected = true;
                        match status {
                            // hello or the periodic status: says nothing
                            // about the last configuration command.
                            Some(status) => {
                                h.pid = Some(status.pid);
                                h.requests = status.requests;
                            }
                            None => h.error = None,
                        }
                    }),
                    Ok(Reply::Error { seq, message }) => {
                        eprintln!("level=error msg=\"proxy refused command {seq}: {message}\"");
                        update(health, |h| h.error = Some(message));
                        // Whatever it holds now, the next change sends all.
                        sent = None;
                    }
                    Err(e) => eprintln!("level=warning msg=\"proxy: unreadable line: {e}\""),
                }
            }
        }
    }
}

/// Aborts the task when the session ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Applies DNS answers a batch at a time (what queued up while the last
/// batch was applied), then hands back the ids of the held ones.
async fn apply_answers(
    mut queue: tokio::sync::mpsc::UnboundedReceiver<(u64, DnsAnswer)>,
    apply: DnsAnswers,
    done: tokio::sync::mpsc::UnboundedSender<u64>,
) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = queue.try_recv() {
            batch.push(next);
        }
        let apply = apply.clone();
        let applied = tokio::task::spawn_blocking(move || {
            let (ids, answers): (Vec<u64>, Vec<DnsAnswer>) = batch.into_iter().unzip();
            apply(answers);
            ids
        })
        .await;
        let Ok(ids) = applied else { return };
        for id in ids.into_iter().filter(|id| *id != REFRESH_ID) {
            if done.send(id).is_err() {
                return;
            }
        }
    }
}

fn update(health: &Mutex<ProxyHealth>, change: impl FnOnce(&mut ProxyHealth)) {
    change(&mut health.lock().unwrap_or_else(|p| p.into_inner()));
}

/// The proxy binary: `cilium-proxy` next to the agent's own executable, else
/// from PATH.
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("cilium-proxy")))
        .filter(|path| path.exists())
        .unwrap_or_else(|| Path::new("cilium-proxy").to_path_buf())
}
