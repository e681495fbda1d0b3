//! nginx in a pod's network namespace, on its own prefix (config, pid file,
//! error log and temp paths under a private directory), as the origin server
//! and as the plain reverse proxy of setup (c). Stopped on drop: SIGTERM to
//! the master (fast shutdown), SIGKILL to master and workers if it lingers.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testbed::bench::{process_table, tools};
use testbed::NetNs;

const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Idle upstream connections each reverse-proxy worker keeps. nginx's
/// upstream is HTTP/1.1, one request per connection at a time, so this must
/// exceed the client's concurrency (h2load: clients × streams), or the
/// surplus connections are closed and reopened for every request.
pub const UPSTREAM_KEEPALIVE: usize = 1024;

/// The origin's fixed response body.
pub const ORIGIN_BODY: &str = "hello from the origin\n";

/// What one nginx serves.
pub enum Role {
    /// `return 200` on every port; `h2c_ports` speak HTTP/2 with prior
    /// knowledge (cleartext), the others HTTP/1.1.
    Origin {
        http1_ports: Vec<u16>,
        h2c_ports: Vec<u16>,
    },
    /// `proxy_pass` over keep-alive HTTP/1.1 to `upstream`, listening for
    /// HTTP/1.1 on `http1_port` and for h2c on `h2c_port`.
    ReverseProxy {
        http1_port: u16,
        h2c_port: u16,
        upstream: SocketAddr,
    },
}

impl Role {
    fn ports(&self) -> Vec<u16> {
        match self {
            Role::Origin {
                http1_ports,
                h2c_ports,
            } => http1_ports.iter().chain(h2c_ports).copied().collect(),
            Role::ReverseProxy {
                http1_port,
                h2c_port,
                ..
            } => vec![*http1_port, *h2c_port],
        }
    }
}

/// The whole nginx.conf for `role` under `prefix`.
pub fn config(role: &Role, prefix: &Path, workers: usize) -> String {
    let p = prefix.display();
    let server = match role {
        Role::Origin {
            http1_ports,
            h2c_ports,
        } => {
            let mut listen = String::new();
            for port in http1_ports {
                listen.push_str(&format!("        listen {port} reuseport;\n"));
            }
            for port in h2c_ports {
                listen.push_str(&format!("        listen {port} http2 reuseport;\n"));
            }
            format!(
                "    server {{\n{listen}        location / {{ return 200 \"{}\"; }}\n    }}\n",
                ORIGIN_BODY.escape_default()
            )
        }
        Role::ReverseProxy {
            http1_port,
            h2c_port,
            upstream,
        } => format!(
            "    upstream origin {{\n\
             \x20       server {upstream};\n\
             \x20       keepalive {UPSTREAM_KEEPALIVE};\n\
             \x20       keepalive_requests 1000000;\n\
             \x20   }}\n\
             \x20   server {{\n\
             \x20       listen {http1_port} reuseport;\n\
             \x20       listen {h2c_port} http2 reuseport;\n\
             \x20       location / {{\n\
             \x20           proxy_pass http://origin;\n\
             \x20           proxy_http_version 1.1;\n\
             \x20           proxy_set_header Connection \"\";\n\
             \x20       }}\n\
             \x20   }}\n"
        ),
    };
    format!(
        "# Written by cilium-bench-l7; removed with the run.\n\
         daemon off;\n\
         worker_processes {workers};\n\
         pid {p}/nginx.pid;\n\
         error_log {p}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   default_type text/plain;\n\
         \x20   keepalive_requests 1000000;\n\
         \x20   keepalive_timeout 120s;\n\
         \x20   client_body_temp_path {p}/client_body;\n\
         \x20   proxy_temp_path {p}/proxy;\n\
         \x20   fastcgi_temp_path {p}/fastcgi;\n\
         \x20   uwsgi_temp_path {p}/uwsgi;\n\
         \x20   scgi_temp_path {p}/scgi;\n\
         {server}}}\n"
    )
}

pub struct Nginx {
    what: String,
    master: Child,
    workers: Vec<u32>,
    prefix: PathBuf,
}

impl Nginx {
    /// Writes the config under `prefix` (created, removed on drop), starts
    /// nginx in `netns` and waits until every port accepts connections.
    pub fn start(
        netns: &NetNs,
        what: &str,
        role: &Role,
        prefix: &Path,
        workers: usize,
    ) -> Result<Nginx> {
        std::fs::create_dir_all(prefix)
            .with_context(|| format!("cannot create {}", prefix.display()))?;
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, config(role, prefix, workers))
            .with_context(|| format!("cannot write {}", conf.display()))?;
        let error_log = prefix.join("error.log");
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", netns.path().display()))
            .arg("--")
            .arg("nginx")
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The master stops its workers.
        tools::stop_with_parent(&mut command, libc::SIGTERM);
        let master = command
            .spawn()
            .with_context(|| format!("cannot start nginx ({what}); is it installed?"))?;
        let mut nginx = Nginx {
            what: format!("nginx ({what}) in netns {}", netns.name()),
            master,
            workers: Vec::new(),
            prefix: prefix.to_path_buf(),
        };
        nginx.wait_listening(netns, &role.ports(), workers)?;
        Ok(nginx)
    }

    /// Master and workers, for CPU accounting.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(self.master.id())
            .chain(self.workers.iter().copied())
            .collect()
    }

    fn wait_listening(&mut self, netns: &NetNs, ports: &[u16], workers: usize) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.master.try_wait()? {
                bail!(
                    "{} exited with {status}: {}",
                    self.what,
                    self.error_log_tail()
                );
            }
            let probe = ports.to_vec();
            let all_up = netns.run(move || {
                probe.iter().all(|&port| {
                    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                })
            })?;
            self.workers = process_table::children_of(self.master.id());
            if all_up && self.workers.len() >= workers {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} does not listen on {ports:?} with {workers} workers after {START_TIMEOUT:?}: {}",
                    self.what,
                    self.error_log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn error_log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join("\n");
        if tail.is_empty() {
            "(error.log is empty)".into()
        } else {
            tail
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: signalling our own child, whose pid has not been reaped.
        unsafe { libc::kill(self.master.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        let mut exited = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.master.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !exited {
            let _ = self.master.kill();
            let _ = self.master.wait();
        }
        for &worker in &self.workers {
            // Only if it is still one of ours: a worker of a master that is
            // gone has been reparented, and its pid may have been reused.
            let still_worker = std::fs::read_to_string(format!("/proc/{worker}/cmdline"))
                .is_ok_and(|c| c.starts_with("nginx: worker"));
            if still_worker {
                // SAFETY: a worker of the nginx we started (checked above).
                unsafe { libc::kill(worker as libc::pid_t, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_config_listens_and_answers() {
        let role = Role::Origin {
            http1_ports: vec![80, 8080],
            h2c_ports: vec![81],
        };
        let text = config(&role, Path::new("/tmp/x"), 2);
        assert!(text.contains("listen 80 reuseport;"), "{text}");
        assert!(text.contains("listen 81 http2 reuseport;"), "{text}");
        assert!(
            text.contains("return 200 \"hello from the origin\\n\";"),
            "{text}"
        );
        assert!(text.contains("pid /tmp/x/nginx.pid;"), "{text}");
        assert!(text.contains("worker_processes 2;"), "{text}");
    }

    #[test]
    fn reverse_proxy_config_keeps_upstream_connections_alive() {
        let role = Role::ReverseProxy {
            http1_port: 8081,
            h2c_port: 8083,
            upstream: "10.0.0.5:8080".parse().unwrap(),
        };
        let text = config(&role, Path::new("/tmp/y"), 1);
        assert!(text.contains("server 10.0.0.5:8080;"), "{text}");
        assert!(text.contains("keepalive 1024;"), "{text}");
        assert!(text.contains("proxy_set_header Connection \"\";"), "{text}");
        assert!(text.contains("proxy_http_version 1.1;"), "{text}");
    }
}
