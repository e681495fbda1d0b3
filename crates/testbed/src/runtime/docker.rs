//! dockerd on private data, exec and run paths (its own socket, pid file
//! and managed containerd), with no iptables, bridge or NAT of its own, and
//! cilium-docker serving it as a network and IPAM plugin under a unique
//! driver name. Dropping the guards removes containers and networks
//! (through the plugin, which needs the agent), then stops the daemons.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::agent::find_binary;
use crate::runtime::daemon::{remove_tree, Daemon};
use crate::runtime::require_programs;
use crate::unique;

/// What the Makefile's setup installs for these tests.
pub const PACKAGES: &str = "docker.io busybox-static";
/// Environment variable overriding where `cilium-docker` is found.
pub const PLUGIN_BIN_ENV: &str = "CILIUM_DOCKER_BIN";
/// Where dockerd discovers plugins by socket.
pub const PLUGIN_DIR: &str = "/run/docker/plugins";
/// The docker.io CLI (another `docker` may come first in `$PATH`).
const DOCKER_CLI: &str = "/usr/bin/docker";

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A private dockerd.
pub struct Dockerd {
    cli: DockerCli,
    daemon: Option<Daemon>,
}

/// The docker CLI pointed at one daemon, with a private client config.
struct DockerCli {
    root: PathBuf,
    socket: PathBuf,
}

impl DockerCli {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(DOCKER_CLI);
        cmd.env("DOCKER_CONFIG", self.root.join("client"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_HOST")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args);
        cmd
    }

    fn output(&self, args: &[&str]) -> Result<Output> {
        self.command(args)
            .output()
            .with_context(|| format!("cannot run `docker {}`", args.join(" ")))
    }
}

impl Dockerd {
    pub fn start() -> Result<Dockerd> {
        require_programs(&["dockerd", "containerd", "runc", "tar"], PACKAGES)?;
        let root = std::env::temp_dir().join(format!("cilium-dockerd-{}", unique::next_tag()));
        for sub in ["data", "exec", "client"] {
            fs::create_dir_all(root.join(sub))
                .with_context(|| format!("cannot create {}", root.join(sub).display()))?;
        }
        let config = root.join("daemon.json");
        fs::write(&config, "{}")?;
        let socket = root.join("docker.sock");
        let p = |name: &str| root.join(name).display().to_string();
        let args: Vec<String> = [
            "--data-root",
            &p("data"),
            "--exec-root",
            &p("exec"),
            "--pidfile",
            &p("docker.pid"),
            "--config-file",
            &p("daemon.json"),
            "-H",
            &format!("unix://{}", socket.display()),
            "--storage-driver",
            "vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            "--userland-proxy=false",
            "--default-ulimit",
            "nofile=1024:20000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut daemon = Daemon::spawn("dockerd", &args, &root.join("dockerd.log"))?;
        let cli = DockerCli {
            root: root.clone(),
            socket: socket.clone(),
        };
        daemon.wait_until(START_TIMEOUT, || {
            cli.output(&["version"]).is_ok_and(|o| o.status.success())
        })?;
        Ok(Dockerd {
            cli,
            daemon: Some(daemon),
        })
    }

    /// dockerd's API socket.
    pub fn socket(&self) -> &Path {
        &self.cli.socket
    }

    /// A private scratch directory removed with the daemon.
    pub fn temp_dir(&self) -> &Path {
        &self.cli.root
    }

    /// `docker ARGS...` against this daemon, ready to spawn.
    pub fn command(&self, args: &[&str]) -> Command {
        self.cli.command(args)
    }

    pub fn output(&self, args: &[&str]) -> Result<Output> {
        self.cli.output(args)
    }

    /// Runs `docker ARGS...`, failing unless it exits 0; stdout trimmed.
    pub fn run_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.output(args)?;
        if !out.status.success() {
            bail!(
                "`docker {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `docker import TARBALL IMAGE`.
    pub fn import(&self, tarball: &Path, image: &str) -> Result<()> {
        self.run_ok(&["import", &tarball.display().to_string(), image])
            .map(|_| ())
    }

    /// Removes every container and user network (the plugin's
    /// DeleteEndpoint runs for each attachment).
    pub fn remove_all(&self) {
        if let Ok(ids) = self.run_ok(&["ps", "-aq"]) {
            let ids: Vec<&str> = ids.lines().filter(|l| !l.is_empty()).collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = self.output(&args);
            }
        }
        let _ = self.output(&["network", "prune", "-f"]);
    }

    /// The log's tail, for failure messages.
    pub fn log_tail(&self) -> String {
        self.daemon
            .as_ref()
            .map(Daemon::log_tail)
            .unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let Some(mut daemon) = self.daemon.take() else {
            return;
        };
        self.remove_all();
        daemon.stop(Duration::from_secs(20));
        drop(daemon);
        remove_tree(&self.cli.root);
    }
}

/// cilium-docker serving one dockerd as driver `name`, on
/// `/run/docker/plugins/<name>.sock`.
pub struct DockerPlugin {
    name: String,
    socket: PathBuf,
    daemon: Daemon,
}

impl DockerPlugin {
    /// `name` must be unique on the node (several dockerds share the
    /// plugin directory); `cilium-<tag>` is a good choice.
    pub fn start(name: &str, agent_socket: &Path, docker: &Dockerd) -> Result<DockerPlugin> {
        let bin = find_binary("cilium-docker", PLUGIN_BIN_ENV)?;
        let socket = Path::new(PLUGIN_DIR).join(format!("{name}.sock"));
        let args: Vec<String> = vec![
            "--socket".into(),
            socket.display().to_string(),
            "--agent-socket".into(),
            agent_socket.display().to_string(),
            "--docker-host".into(),
            format!("unix://{}", docker.socket().display()),
            "--debug".into(),
        ];
        let mut daemon = Daemon::spawn(
            &bin.display().to_string(),
            &args,
            &docker.temp_dir().join(format!("{name}.log")),
        )?;
        daemon.wait_until(Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        })?;
        Ok(DockerPlugin {
            name: name.to_string(),
            socket,
            daemon,
        })
    }

    /// The driver name for `-d` and `--ipam-driver`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's log (every call with `--debug`).
    pub fn log_tail(&self) -> String {
        self.daemon.log_tail()
    }
}

impl Drop for DockerPlugin {
    fn drop(&mut self) {
        self.daemon.stop(Duration::from_secs(5));
        let _ = fs::remove_file(&self.socket);
    }
}
