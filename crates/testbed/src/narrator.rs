//! The demos' narration: one bold line per step, each command as an
//! operator would type it, its output indented beneath. Colour only on a
//! terminal.

use std::io::IsTerminal;
use std::process::Output;

use anyhow::{bail, Result};

use crate::agent::Agent;
use crate::cluster::{ClusterPod, Node};
use crate::kubernetes::ControlPlane;
use crate::pod::Pod;

/// A pod a command can run in, single-node ([`Pod`]) or on a cluster node
/// ([`ClusterPod`]).
pub trait PodShell {
    fn name(&self) -> &str;
    fn exec(&self, args: &[&str]) -> Output;
}

impl PodShell for Pod {
    fn name(&self) -> &str {
        Pod::name(self)
    }

    fn exec(&self, args: &[&str]) -> Output {
        Pod::exec(self, args)
    }
}

impl PodShell for ClusterPod {
    fn name(&self) -> &str {
        ClusterPod::name(self)
    }

    fn exec(&self, args: &[&str]) -> Output {
        ClusterPod::exec(self, args)
    }
}

pub struct Narrator {
    color: bool,
}

impl Default for Narrator {
    fn default() -> Narrator {
        Narrator::new()
    }
}

impl Narrator {
    pub fn new() -> Narrator {
        Narrator {
            color: std::io::stdout().is_terminal(),
        }
    }

    pub fn step(&self, what: &str) {
        if self.color {
            println!("\n\x1b[1;36m==>\x1b[0m \x1b[1m{what}\x1b[0m");
        } else {
            println!("\n==> {what}");
        }
    }

    pub fn detail(&self, line: &str) {
        println!("    {line}");
    }

    pub fn text(&self, text: &str) {
        for line in text.lines() {
            self.detail(line);
        }
    }

    pub fn prompt(&self, prompt: &str) {
        if self.color {
            println!("    \x1b[2m{prompt}\x1b[0m");
        } else {
            println!("    {prompt}");
        }
    }

    /// Runs and prints `curl ARGS...` in `pod`; its output, or an error when
    /// curl fails (a dropped connection times out after 2 s).
    pub fn curl(&self, pod: &impl PodShell, args: &[&str]) -> Result<String> {
        self.prompt(&format!("{}$ curl {}", pod.name(), args.join(" ")));
        let mut full = vec!["curl", "-s", "--max-time", "2"];
        full.extend(args);
        let output = pod.exec(&full);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            self.detail("(no answer)");
            bail!("curl {} from {} failed", args.join(" "), pod.name());
        }
        self.text(&stdout);
        Ok(stdout)
    }

    /// Runs and prints `cilium ARGS...`; returns its stdout.
    pub fn command(&self, agent: &Agent, args: &[&str]) -> Result<String> {
        self.prompt(&format!("$ cilium {}", args.join(" ")));
        let stdout = agent.cli_ok(args)?;
        self.text(&stdout);
        Ok(stdout)
    }

    /// Runs and prints `cilium ARGS...` against `node`'s agent.
    pub fn command_on(&self, node: &Node, args: &[&str]) -> Result<String> {
        self.prompt(&format!("{}$ cilium {}", node.name(), args.join(" ")));
        let stdout = node.cli_ok(args)?;
        self.text(&stdout);
        Ok(stdout)
    }

    /// Runs and prints `kubectl ARGS...`; returns its stdout.
    pub fn kubectl(&self, plane: &ControlPlane, args: &[&str]) -> Result<String> {
        self.prompt(&format!("$ kubectl {}", args.join(" ")));
        let stdout = plane.kubectl(args)?;
        self.text(&stdout);
        Ok(stdout)
    }

    /// Prints `yaml`, then applies it with `kubectl apply -f -`.
    pub fn apply(&self, plane: &ControlPlane, file: &str, yaml: &str) -> Result<String> {
        self.prompt(&format!("$ cat {file}"));
        self.text(yaml.trim_start_matches('\n'));
        self.prompt(&format!("$ kubectl apply -f {file}"));
        let stdout = plane.apply(yaml)?;
        self.text(&stdout);
        Ok(stdout)
    }
}
