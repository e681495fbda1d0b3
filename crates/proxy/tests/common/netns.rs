//! A private network namespace for tests that need the transparent path:
//! TPROXY rules there play the datapath's `bpf_sk_assign`. Needs root,
//! unshare and nsenter.

use std::process::Command;

use super::Process;

/// A private network namespace held open by a `sleep` process.
pub struct Netns {
    holder: Process,
}

impl Netns {
    pub fn new() -> Self {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "600"])
            .spawn()
            .expect("unshare (root needed)");
        let netns = Netns {
            holder: Process(child),
        };
        // Wait until `unshare` has switched namespaces (exec'd sleep).
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        let path = format!("/proc/{}/ns/net", netns.pid());
        for _ in 0..200 {
            if std::fs::read_link(&path).is_ok_and(|ns| ns != own) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        netns.must(&["ip", "link", "set", "lo", "up"]);
        netns
    }

    pub fn pid(&self) -> String {
        self.holder.0.id().to_string()
    }

    pub fn prefix(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            "-t".into(),
            self.pid(),
            "-n".into(),
            "--".into(),
        ]
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command.args(["-t", &self.pid(), "-n", "--"]).args(args);
        command
    }

    /// The agent's proxy routing: packets with the "to proxy" mark are
    /// delivered locally (table 2004), whatever their destination.
    pub fn route_to_proxy_locally(&self) {
        self.must(&[
            "ip",
            "rule",
            "add",
            "fwmark",
            "0x200/0xf00",
            "lookup",
            "2004",
        ]);
        self.must(&[
            "ip",
            "route",
            "add",
            "local",
            "0.0.0.0/0",
            "dev",
            "lo",
            "table",
            "2004",
        ]);
    }

    pub fn must(&self, args: &[&str]) {
        let output = self.command(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `args` as a command inside `netns`, or right here without one.
pub fn command_in(netns: Option<&Netns>, args: &[&str]) -> Command {
    match netns {
        Some(netns) => netns.command(args),
        None => {
            let mut command = Command::new(args[0]);
            command.args(&args[1..]);
            command
        }
    }
}
