//! What every measurement runs on: a cilium-agent with Hubble on (its
//! Observer socket in a private directory), a client and a server pod,
//! the policy that allows client → server:8080, and nginx in the server.
//! Everything is released on drop.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testbed::bench::entry::step;
use testbed::bench::{policy_import, process_table, signals};
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
    _nginx: Nginx,
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
            _nginx: nginx,
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
