//! What every measurement runs on: a cilium-agent with Hubble on (its
//! Observer socket in a private directory), a client and a server pod,
//! the policy that allows client → server:8080, and nginx in the server.
//! Everything is released on drop.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testbed::bench::entry::step;
use testbed::bench::{policy_import, process_table, signals, tools};
use testbed::{Agent, AgentOptions, Pod};

use crate::nginx::{Nginx, Role};

pub const SERVER_PORT: u16 = 8080;
const REALIZE_TIMEOUT: Duration = Duration::from_secs(15);

const POLICY: &str = "\
- endpointSelector:
    matchLabels: {app: bench-hubble-server}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: bench-hubble-client}
    toPorts:
    - ports: [{port: \"8080\", protocol: TCP}]
";

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Declared in drop order: nginx before the pods, the pods before the
/// agent, the socket's directory last.
pub struct Scene {
    nginx: Nginx,
    pub client: Pod,
    pub server: Pod,
    pub agent: Agent,
    pub agent_pid: u32,
    pub socket: PathBuf,
    _dir: TempDir,
}

impl Scene {
    /// `capacity`: `--hubble-event-buffer-capacity`, the agent's default
    /// when `None`. `tag` keeps the directories of successive agents apart.
    pub fn start(
        started: Instant,
        range: &str,
        capacity: Option<usize>,
        tag: &str,
    ) -> Result<Scene> {
        // /tmp/cilium-test-<pid>-*: what run.sh sweeps after a SIGKILL.
        let dir =
            std::env::temp_dir().join(format!("cilium-test-{}-hubble-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = TempDir(dir);
        let socket = dir.0.join("hubble.sock");
        let mut extra_args = vec![
            "--enable-hubble".to_string(),
            "true".into(),
            "--hubble-socket-path".into(),
            socket.display().to_string(),
        ];
        if let Some(c) = capacity {
            extra_args.extend(["--hubble-event-buffer-capacity".into(), c.to_string()]);
        }
        step(
            started,
            &format!(
                "starting cilium-agent ({range}, ring capacity {})",
                capacity.map_or("default".into(), |c| c.to_string())
            ),
        );
        let agent = Agent::start_with(AgentOptions {
            ipv4_range: Some(range.to_string()),
            extra_args,
            ..Default::default()
        })?;
        let agent_pid = process_table::agent_pid(agent.socket())?;
        let client = Pod::create(&agent, "hb-client", &["k8s:app=bench-hubble-client"])?;
        reuse_time_wait_ports(&client)?;
        let server = Pod::create(&agent, "hb-server", &["k8s:app=bench-hubble-server"])?;
        signals::check()?;
        let revision = policy_import::import_text(&agent, "bench-hubble-policy.yaml", POLICY)?;
        server.wait_for_policy_revision(&agent, revision, REALIZE_TIMEOUT)?;
        let nginx = Nginx::start(
            server.namespace(),
            "server",
            &Role::Origin {
                http1_ports: vec![SERVER_PORT],
                h2c_ports: vec![],
            },
            &dir.0.join("nginx"),
            1,
        )?;
        wait_for_socket(&socket)?;
        Ok(Scene {
            nginx,
            client,
            server,
            agent,
            agent_pid,
            socket,
            _dir: dir,
        })
    }

    pub fn server_ip(&self) -> Ipv4Addr {
        self.server.ip()
    }

    pub fn url(&self) -> String {
        format!("http://{}:{SERVER_PORT}/", self.server_ip())
    }

    /// `hubble_flows_processed_total`, every label set.
    pub fn flows_processed(&self) -> Result<u64> {
        let samples = self
            .agent
            .client()
            .metrics_list()
            .context("GET /v1/metrics")?;
        Ok(samples
            .iter()
            .filter(|s| s.name == "hubble_flows_processed_total")
            .map(|s| s.value as u64)
            .sum())
    }

    /// One allowed connection: a few flows for a client to see.
    pub fn poke(&self) -> bool {
        self.client
            .tcp_connect(self.server_ip(), SERVER_PORT, Duration::from_millis(500))
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// nginx's master and workers.
    pub fn nginx_pids(&self) -> Vec<u32> {
        self.nginx.pids()
    }

    /// Sockets in TIME_WAIT in the client pod (its /proc/net/sockstat).
    pub fn client_time_wait(&self) -> Result<u64> {
        let out = tools::run_in(self.client.namespace(), &["cat", "/proc/net/sockstat"])?;
        time_wait(&String::from_utf8_lossy(&out.stdout))
            .context("no TCP line with tw in the client's sockstat")
    }
}

/// wrk closes first on some connections (it may read the whole response
/// before nginx's FIN comes), and those leave its port in TIME_WAIT for
/// 60 s. At ~10k connections/s a few percent of them fill the 28k
/// ephemeral ports, and then connect() crawls through the port range or
/// fails: the rate falls to a few hundred/s until they expire. A load
/// generator reuses them (`tcp_tw_reuse=1`: a TIME_WAIT port whose
/// timestamps prove the new connection newer), as the kernel's default
/// does only on loopback.
fn reuse_time_wait_ports(client: &Pod) -> Result<()> {
    tools::run_in(
        client.namespace(),
        &["sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1"],
    )?;
    Ok(())
}

/// `tw` of sockstat's `TCP:` line.
fn time_wait(sockstat: &str) -> Option<u64> {
    let line = sockstat.lines().find(|l| l.starts_with("TCP:"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields.iter().position(|f| *f == "tw")?;
    fields.get(at + 1)?.parse().ok()
}

fn wait_for_socket(socket: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        if Instant::now() >= deadline {
            bail!("the agent made no Hubble socket at {}", socket.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_time_wait_from_sockstat() {
        let text =
            "sockets: used 5\nTCP: inuse 1 orphan 0 tw 6160 alloc 3 mem 1\nUDP: inuse 0 mem 0\n";
        assert_eq!(super::time_wait(text), Some(6160));
        assert_eq!(super::time_wait("UDP: inuse 0\n"), None);
    }
}
