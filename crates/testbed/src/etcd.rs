//! A real etcd (3.4, Debian's `etcd-server`) for tests: one or three members on
//! loopback with free ports and private data directories, which a test can kill,
//! restart and stop. Dropping the [`EtcdCluster`] kills every member and removes its
//! directories. Needs no root.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::unique;

/// How long a member (or the whole cluster) may take to become healthy.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// One etcd process and what it needs to come back with the same identity.
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    process: Option<Child>,
}

/// An etcd cluster of one or more members on 127.0.0.1 (or the address
/// given to [`EtcdCluster::start_on`]).
#[derive(Debug)]
pub struct EtcdCluster {
    base: PathBuf,
    /// The address every member listens on (clients and peers).
    host: Ipv4Addr,
    initial_cluster: String,
    members: Vec<Member>,
}

impl EtcdCluster {
    /// Starts `members` members and waits until the cluster has a leader.
    pub fn start(members: usize) -> Result<EtcdCluster> {
        EtcdCluster::start_on(members, Ipv4Addr::LOCALHOST)
    }

    /// Like [`EtcdCluster::start`], listening on `host` instead of loopback
    /// (e.g. a bridge address that agents in other namespaces reach).
    pub fn start_on(members: usize, host: Ipv4Addr) -> Result<EtcdCluster> {
        if members == 0 {
            bail!("an etcd cluster needs at least one member");
        }
        let binary = etcd_binary()?;
        let base = std::env::temp_dir().join(format!("cilium-rs-etcd-{}", unique::next_tag()));
        fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;
        let ports = free_ports(host, members * 2)?;
        let members: Vec<Member> = (0..members)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                data_dir: base.join(format!("m{i}.data")),
                log: base.join(format!("m{i}.log")),
                process: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://{host}:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            base,
            host,
            initial_cluster,
            members,
        };
        for i in 0..cluster.members.len() {
            cluster.spawn(&binary, i)?;
        }
        cluster.wait_healthy()?;
        Ok(cluster)
    }

    /// `http://HOST:PORT` of every member, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://{}:{}", self.host, m.client_port))
            .collect()
    }

    /// The agent's `--kvstore-opt` value: `etcd.endpoints=URL[,URL…]`.
    pub fn kvstore_opt(&self) -> String {
        format!("etcd.endpoints={}", self.endpoints().join(","))
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kills member `index` with SIGKILL (no graceful leave); its data stays.
    pub fn kill_member(&mut self, index: usize) -> Result<()> {
        let member = self
            .members
            .get_mut(index)
            .with_context(|| format!("no etcd member {index}"))?;
        kill(member);
        Ok(())
    }

    /// Starts member `index` again on its old ports and data; waits until it serves.
    pub fn start_member(&mut self, index: usize) -> Result<()> {
        if index >= self.members.len() {
            bail!("no etcd member {index}");
        }
        if self.members[index].process.is_none() {
            self.spawn(&etcd_binary()?, index)?;
        }
        let port = self.members[index].client_port;
        let host = self.host;
        wait_until(READY_TIMEOUT, || healthy(host, port))
            .with_context(|| format!("etcd member {index} did not become healthy"))
    }

    /// Kills every member; data stays for [`EtcdCluster::restart_all`].
    pub fn stop_all(&mut self) {
        self.members.iter_mut().for_each(kill);
    }

    /// Starts every stopped member with its data and waits for a leader.
    pub fn restart_all(&mut self) -> Result<()> {
        let binary = etcd_binary()?;
        for i in 0..self.members.len() {
            if self.members[i].process.is_none() {
                self.spawn(&binary, i)?;
            }
        }
        self.wait_healthy()
    }

    /// Which members are running.
    pub fn running(&self) -> Vec<bool> {
        self.members.iter().map(|m| m.process.is_some()).collect()
    }

    fn spawn(&mut self, binary: &Path, index: usize) -> Result<()> {
        let member = &mut self.members[index];
        let client = format!("http://{}:{}", self.host, member.client_port);
        let peer = format!("http://{}:{}", self.host, member.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&member.log)
            .with_context(|| format!("open {}", member.log.display()))?;
        let child = Command::new(binary)
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&member.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.base.to_string_lossy()])
            // Short raft timers: leader loss is noticed in well under a second.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        member.process = Some(child);
        Ok(())
    }

    /// Waits until every running member reports healthy (the cluster has a leader).
    fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let host = self.host;
        for member in &mut self.members {
            let Some(process) = member.process.as_mut() else {
                continue;
            };
            loop {
                if let Some(status) = process.try_wait()? {
                    let log = fs::read_to_string(&member.log).unwrap_or_default();
                    bail!("etcd member {} exited with {status}:\n{log}", member.name);
                }
                if healthy(host, member.client_port) {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "etcd member {} not healthy after {READY_TIMEOUT:?}",
                        member.name
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.stop_all();
        let _ = fs::remove_dir_all(&self.base);
    }
}

fn kill(member: &mut Member) {
    if let Some(mut process) = member.process.take() {
        let _ = process.kill();
        let _ = process.wait();
    }
}

/// `etcd` from `$ETCD` or the PATH (Debian installs it as /usr/bin/etcd).
fn etcd_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ETCD") {
        return Ok(PathBuf::from(path));
    }
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let path = Path::new(dir).join("etcd");
        if path.exists() {
            return Ok(path);
        }
    }
    bail!("etcd not found: apt-get install -y etcd-server (or set $ETCD)")
}

/// Ports the kernel just handed out; released immediately, so another process could
/// take one before etcd binds it, but on a test machine that is rare enough.
fn free_ports(host: Ipv4Addr, count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((host, 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("reserve free ports on {host}"))?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// etcd's `/health` says `"health":"true"` only while the member sees a leader.
fn healthy(host: Ipv4Addr, port: u16) -> bool {
    let probe = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect((host, port))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut body = String::new();
        stream.read_to_string(&mut body)?;
        Ok(body)
    };
    probe().is_ok_and(|body| body.contains("\"health\":\"true\""))
}

fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
