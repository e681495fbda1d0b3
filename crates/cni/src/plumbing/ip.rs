//! Running iproute2's `ip`. Chosen over netlink crates to keep the plugin
//! small and its failures readable: every error carries the command line and
//! the kernel's answer as `ip` words it. A child process inherits the
//! network namespace of the thread that spawns it, so commands run from a
//! thread inside the container's namespace act there.

use std::process::Command;

use serde_json::Value;

use crate::error::CniError;

/// Where `ip` is looked up when `$PATH` does not have it (runtimes often
/// run plugins with a minimal environment).
const FALLBACK_IP: &[&str] = &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];

/// A failed `ip` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpFailure {
    pub command: String,
    pub stderr: String,
}

impl IpFailure {
    /// True when the object is already gone (teardown may ignore it).
    pub fn is_not_found(&self) -> bool {
        let s = self.stderr.to_ascii_lowercase();
        [
            "cannot find device",
            "no such device",
            "no such process",
            "does not exist",
        ]
        .iter()
        .any(|needle| s.contains(needle))
    }

    pub fn into_cni(self, what: &str) -> CniError {
        CniError::plumbing(
            what.to_string(),
            format!("`{}` failed: {}", self.command, self.stderr),
        )
    }
}

fn program() -> String {
    let in_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("ip").is_file()));
    if in_path {
        return "ip".to_string();
    }
    FALLBACK_IP
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or(&"ip")
        .to_string()
}

/// Runs `ip ARGS...`; stdout on success.
pub fn run(args: &[&str]) -> Result<String, IpFailure> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new(program())
        .args(args)
        .output()
        .map_err(|e| IpFailure {
            command: command.clone(),
            stderr: format!("cannot run ip (is iproute2 installed?): {e}"),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(IpFailure {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Like [`run`], mapping a failure to a CNI error that says `what` failed.
pub fn must(what: &str, args: &[&str]) -> Result<String, CniError> {
    run(args).map_err(|f| f.into_cni(what))
}

/// Like [`run`], but "already gone" counts as success.
pub fn ignoring_absent(what: &str, args: &[&str]) -> Result<(), CniError> {
    match run(args) {
        Ok(_) => Ok(()),
        Err(f) if f.is_not_found() => Ok(()),
        Err(f) => Err(f.into_cni(what)),
    }
}

/// Pins `gateway`'s MAC on `ifname` (`nud permanent`) so the container
/// never has to resolve it.
pub fn pin_neighbour(
    what: &str,
    gateway: &str,
    mac: &str,
    ifname: &str,
) -> Result<String, CniError> {
    must(
        what,
        &[
            "neigh",
            "replace",
            gateway,
            "lladdr",
            mac,
            "dev",
            ifname,
            "nud",
            "permanent",
        ],
    )
}

/// A link's MAC and index (`ip -j link show dev NAME`), `None` if absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub mac: String,
    pub ifindex: i64,
}

pub fn link(name: &str) -> Result<Option<LinkInfo>, CniError> {
    let text = match run(&["-j", "link", "show", "dev", name]) {
        Ok(text) => text,
        Err(f) if f.is_not_found() => return Ok(None),
        Err(f) => return Err(f.into_cni(&format!("reading link {name}"))),
    };
    parse_link(&text).map(Some).ok_or_else(|| {
        CniError::plumbing(
            format!("reading link {name}"),
            format!("unexpected `ip -j link` output: {text}"),
        )
    })
}

fn parse_link(text: &str) -> Option<LinkInfo> {
    let v: Value = serde_json::from_str(text).ok()?;
    let link = v.get(0)?;
    Some(LinkInfo {
        mac: link.get("address")?.as_str()?.to_string(),
        ifindex: link.get("ifindex")?.as_i64()?,
    })
}

/// IPv4 addresses of `/32` routes through `dev` (`ip -j route show dev`),
/// empty when the device is gone.
pub fn host_routes(dev: &str) -> Result<Vec<std::net::Ipv4Addr>, CniError> {
    match run(&["-4", "-j", "route", "show", "dev", dev]) {
        Ok(text) => Ok(parse_host_routes(&text)),
        Err(f) if f.is_not_found() => Ok(Vec::new()),
        Err(f) => Err(f.into_cni(&format!("reading routes of {dev}"))),
    }
}

fn parse_host_routes(text: &str) -> Vec<std::net::Ipv4Addr> {
    let Ok(Value::Array(routes)) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    routes
        .iter()
        .filter_map(|r| r.get("dst")?.as_str())
        .filter_map(|dst| dst.strip_suffix("/32").unwrap_or(dst).parse().ok())
        .collect()
}

/// IPv6 addresses of `/128` routes through `dev`, empty when the device
/// is gone.
pub fn host_routes6(dev: &str) -> Result<Vec<std::net::Ipv6Addr>, CniError> {
    match run(&["-6", "-j", "route", "show", "dev", dev]) {
        Ok(text) => Ok(parse_host_routes6(&text)),
        Err(f) if f.is_not_found() => Ok(Vec::new()),
        Err(f) => Err(f.into_cni(&format!("reading IPv6 routes of {dev}"))),
    }
}

fn parse_host_routes6(text: &str) -> Vec<std::net::Ipv6Addr> {
    let Ok(Value::Array(routes)) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    routes
        .iter()
        .filter_map(|r| r.get("dst")?.as_str())
        .filter(|dst| !dst.contains('/') || dst.ends_with("/128"))
        .filter_map(|dst| dst.trim_end_matches("/128").parse().ok())
        .collect()
}

/// Addresses of both families on `dev` (`ip -j addr show dev`).
pub fn addresses(dev: &str) -> Result<Vec<std::net::IpAddr>, CniError> {
    let text = must(
        &format!("reading addresses of {dev}"),
        &["-j", "addr", "show", "dev", dev],
    )?;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(v.get(0)
        .and_then(|l| l.get("addr_info"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.get("local")?.as_str()?.parse().ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_json() {
        let text = r#"[{"ifindex":12,"ifname":"lxc1","address":"aa:bb:cc:dd:ee:ff"}]"#;
        assert_eq!(
            parse_link(text),
            Some(LinkInfo {
                mac: "aa:bb:cc:dd:ee:ff".into(),
                ifindex: 12
            })
        );
        assert_eq!(parse_link("[]"), None);
    }

    #[test]
    fn parses_host_routes_with_and_without_prefix() {
        let text = r#"[{"dst":"10.200.0.5","dev":"lxc1","scope":"link"},{"dst":"10.9.0.0/24"},{"dst":"10.1.1.1/32"}]"#;
        assert_eq!(
            parse_host_routes(text),
            vec![
                "10.200.0.5".parse::<std::net::Ipv4Addr>().unwrap(),
                "10.1.1.1".parse().unwrap()
            ]
        );
        assert!(parse_host_routes("").is_empty());
    }

    #[test]
    fn parses_ipv6_host_routes_only() {
        let text =
            r#"[{"dst":"f00d::a00:f:0:5","dev":"lxc1"},{"dst":"fe80::/64"},{"dst":"fd00::7/128"}]"#;
        assert_eq!(
            parse_host_routes6(text),
            vec![
                "f00d::a00:f:0:5".parse::<std::net::Ipv6Addr>().unwrap(),
                "fd00::7".parse().unwrap()
            ]
        );
    }

    #[test]
    fn recognises_absent_objects() {
        let f = |s: &str| IpFailure {
            command: "ip".into(),
            stderr: s.into(),
        };
        assert!(f("Cannot find device \"lxc1\"").is_not_found());
        assert!(f("RTNETLINK answers: No such process").is_not_found());
        assert!(!f("RTNETLINK answers: File exists").is_not_found());
    }
}
