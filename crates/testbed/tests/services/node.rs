//! The node under test: an agent whose socket LB is attached to a cgroup
//! of its own (so the test's pod clients, in the root cgroup, go through
//! the per-packet datapath), backend pods serving their names on TCP and
//! UDP, and a client pod.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use testbed::{unique, Agent, AgentOptions, Pod};

use crate::servers::{NamedTcpServer, NamedUdpServer};

/// Where cgroup v2 is mounted on our test machines (the agent's default
/// --cgroup-root).
const CGROUP2: &str = "/sys/fs/cgroup/unified";
pub const TCP_PORT: u16 = 8080;
pub const UDP_PORT: u16 = 5353;

/// The backend pod `denied` refuses the client pod's connections (the
/// policy tests of either family put it behind a service with others).
pub const DENY_CLIENT: &str = "\
- endpointSelector:
    matchLabels:
      app: denied
  ingressDeny:
  - fromEndpoints:
    - matchLabels:
        app: client
";

/// A child cgroup for the agent's socket LB; removed on drop (after its
/// processes are gone).
pub struct TestCgroup {
    path: PathBuf,
}

impl TestCgroup {
    pub fn create() -> Result<TestCgroup> {
        let path = Path::new(CGROUP2).join(format!("cilium-test-{}", unique::next_tag()));
        std::fs::create_dir(&path)
            .with_context(|| format!("cannot create cgroup {}", path.display()))?;
        Ok(TestCgroup { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes `cmd`'s process join this cgroup before it execs (so the
    /// socket LB attached here sees its connects from the start).
    pub fn join_on_exec(&self, cmd: &mut Command) -> Result<()> {
        let procs = self.path.join("cgroup.procs");
        let procs = CString::new(procs.display().to_string())?;
        // SAFETY: open/write/close are async-signal-safe; "0" moves the
        // writing process itself.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        Ok(())
    }

    /// Pids in the cgroup now.
    pub fn procs(&self) -> Vec<u32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // A process that just exited may still be listed for a moment.
        let deadline = Instant::now() + Duration::from_secs(3);
        while std::fs::remove_dir(&self.path).is_err()
            && self.path.exists()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Fields drop in order: servers, pods, agent, then the cgroup.
pub struct LbNode {
    _tcp: Vec<NamedTcpServer>,
    _udp: Vec<NamedUdpServer>,
    pub backends: Vec<Pod>,
    pub client: Pod,
    pub agent: Agent,
    pub cgroup: TestCgroup,
}

impl LbNode {
    /// Backend pods named `names` (label `k8s:app=<name>`), each serving
    /// its name on TCP 8080 and UDP 5353, and a pod `client` (app=client).
    pub fn start(names: &[&str]) -> Result<LbNode> {
        let cgroup = TestCgroup::create()?;
        let options = AgentOptions {
            extra_args: vec!["--cgroup-root".into(), cgroup.path().display().to_string()],
            ..Default::default()
        }
        .with_unique_range();
        let agent = Agent::start_with(options)?;
        let mut backends = Vec::new();
        let (mut tcp, mut udp) = (Vec::new(), Vec::new());
        for name in names {
            let pod = Pod::create(&agent, name, &[&format!("k8s:app={name}")])?;
            tcp.push(NamedTcpServer::start(&pod, TCP_PORT)?);
            udp.push(NamedUdpServer::start(&pod, UDP_PORT)?);
            backends.push(pod);
        }
        let client = Pod::create(&agent, "client", &["k8s:app=client"])?;
        Ok(LbNode {
            _tcp: tcp,
            _udp: udp,
            backends,
            client,
            agent,
            cgroup,
        })
    }

    pub fn backend(&self, name: &str) -> &Pod {
        self.backends
            .iter()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("no backend pod {name}"))
    }

    /// Connections accepted by backend `name`'s TCP server.
    pub fn accepted(&self, name: &str) -> usize {
        let i = self
            .backends
            .iter()
            .position(|p| p.name() == name)
            .unwrap_or_else(|| panic!("no backend pod {name}"));
        self._tcp[i].accepted()
    }

    /// "IP:PORT,IP:PORT" of the named backends.
    pub fn addrs(&self, names: &[&str], port: u16) -> String {
        names
            .iter()
            .map(|n| format!("{}:{port}", self.backend(n).ip()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `cilium service update --id ID --frontend VIP --backends ... EXTRA`;
    /// fails unless the CLI succeeds.
    pub fn service(
        &self,
        id: u16,
        frontend: &str,
        backends: &[&str],
        port: u16,
        extra: &[&str],
    ) -> Result<String> {
        let id = id.to_string();
        let addrs = self.addrs(backends, port);
        let mut args = vec![
            "service",
            "update",
            "--id",
            &id,
            "--frontend",
            frontend,
            "--backends",
            &addrs,
        ];
        args.extend_from_slice(extra);
        self.agent.cli_ok(&args)
    }

    /// `cilium service list` and `cilium bpf lb list`, side by side.
    pub fn lb_state(&self) -> Result<(String, String)> {
        Ok((
            self.agent.cli_ok(&["service", "list"])?,
            self.agent.cli_ok(&["bpf", "lb", "list"])?,
        ))
    }
}
