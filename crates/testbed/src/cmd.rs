//! Running the `ip`, `nsenter` and `sysctl` commands that build the topology.
//! Errors carry the full command line and its stderr: a failed setup step
//! must say exactly what the kernel refused.

use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Runs `program args...`; fails unless it exits 0. Returns stdout.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = output(program, args)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            command_line(program, args),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `program args...` and returns whatever happened; only failing to
/// start the program at all is an error.
pub fn output(program: &str, args: &[&str]) -> Result<Output> {
    Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run `{}`", command_line(program, args)))
}

/// Runs a teardown step whose failure only means the thing is already gone.
pub fn run_ignoring_errors(program: &str, args: &[&str]) {
    let _ = Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// `ip ARGS...`.
pub fn ip(args: &[&str]) -> Result<String> {
    run("ip", args)
}

/// A link's attributes from `ip -j link show`, in the current namespace or
/// (with `netns`) in the named one.
pub fn link_info(netns: Option<&str>, ifname: &str) -> Result<LinkInfo> {
    let mut args = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-j", "link", "show", "dev", ifname]);
    let text = ip(&args)?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("cannot parse `ip -j link show dev {ifname}`: {text}"))?;
    let link = json
        .get(0)
        .with_context(|| format!("no link {ifname} in `ip -j link` output: {text}"))?;
    let mac = link["address"]
        .as_str()
        .with_context(|| format!("link {ifname} has no address: {link}"))?
        .to_string();
    let ifindex = link["ifindex"]
        .as_i64()
        .with_context(|| format!("link {ifname} has no ifindex: {link}"))?;
    Ok(LinkInfo { mac, ifindex })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub mac: String,
    pub ifindex: i64,
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}
