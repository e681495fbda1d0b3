//! A pod on a cluster node, attached the way a container runtime would:
//! `cilium-cni ADD` run inside the node's network namespace (`nsenter
//! --net=`), with `CNI_NETNS` naming the pod's namespace and the plugin
//! configuration pointing at that node's agent. The veth's host side lives
//! in the node namespace. Dropping the pod runs `DEL`, then deletes the
//! namespace (which takes the veth with it even if `DEL` failed because the
//! agent was down).

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use api::{Client, Endpoint};
use serde_json::json;

use crate::netns::NetNs;
use crate::traffic::{self, TcpServer, UdpServer};
use crate::unique;

/// The interface name inside the pod.
const POD_IFNAME: &str = "eth0";

/// What a CNI call needs besides the command.
#[derive(Debug, Clone)]
pub(crate) struct CniContext {
    pub cni_bin: PathBuf,
    /// The node's namespace, where the plugin runs.
    pub node_netns: PathBuf,
    /// The node agent's API socket.
    pub socket: PathBuf,
}

/// One pod. Field order is drop order: the CNI attachment is undone before
/// the namespace goes.
pub struct ClusterPod {
    attachment: Attachment,
    netns: NetNs,
    name: String,
    node: usize,
    /// IPv4 address and gateway; `None` for an IPv6-only pod.
    v4: Option<(Ipv4Addr, Ipv4Addr)>,
    ip6: Option<Ipv6Addr>,
    /// The plugin's ADD result, as it printed it.
    result: serde_json::Value,
    client: Client,
}

impl ClusterPod {
    pub(crate) fn create(
        ctx: CniContext,
        node: usize,
        name: &str,
        labels: &[&str],
        k8s: Option<(&str, &str)>,
    ) -> Result<ClusterPod> {
        let (pid, n) = unique::next_pair();
        let netns = NetNs::create(&unique::netns_name(pid, n, name))?;
        let mut attachment = Attachment {
            conf: netconf(name, labels, &ctx.socket)?,
            ctx,
            container_id: format!("testbed-{pid}-{n}-{name}"),
            pod_name: name.to_string(),
            k8s: k8s.map(|(ns, uid)| (ns.to_string(), uid.to_string())),
            pod_netns: netns.path(),
            added: false,
        };
        let result = attachment
            .call("ADD")
            .with_context(|| format!("pod {name} on node {node}: cilium-cni ADD"))?;
        attachment.added = true;
        let v4 = parse_result(&result)
            .with_context(|| format!("pod {name}: cilium-cni ADD result {result}"))?;
        let ip6 = parse_result_ipv6(&result);
        if v4.is_none() && ip6.is_none() {
            bail!("pod {name}: cilium-cni ADD result lists no address: {result}");
        }
        let client = Client::new(&attachment.ctx.socket);
        Ok(ClusterPod {
            attachment,
            netns,
            name: name.to_string(),
            node,
            v4,
            ip6,
            result: serde_json::from_str(&result).context("ADD result")?,
            client,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Index of the node the pod runs on.
    pub fn node(&self) -> usize {
        self.node
    }

    /// The pod's IPv4 address; panics for an IPv6-only pod (see [`ipv4`]).
    ///
    /// [`ipv4`]: ClusterPod::ipv4
    pub fn ip(&self) -> Ipv4Addr {
        self.ipv4()
            .unwrap_or_else(|| panic!("pod {} is IPv6-only", self.name))
    }

    /// The pod's IPv4 address, `None` for an IPv6-only pod.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.v4.map(|(ip, _)| ip)
    }

    /// The node's router IP, the pod's default gateway; panics for an
    /// IPv6-only pod.
    pub fn gateway(&self) -> Ipv4Addr {
        self.v4
            .map(|(_, gateway)| gateway)
            .unwrap_or_else(|| panic!("pod {} is IPv6-only", self.name))
    }

    /// cilium-cni's ADD result for the pod.
    pub fn cni_result(&self) -> &serde_json::Value {
        &self.result
    }

    /// The pod's IPv6 address, when its node's agent has IPv6 enabled.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.ip6
    }

    /// The namespace's name (`ip -n NAME`).
    pub fn netns(&self) -> &str {
        self.netns.name()
    }

    pub fn namespace(&self) -> &NetNs {
        &self.netns
    }

    /// The CNI container id the pod was attached with.
    pub fn container_id(&self) -> &str {
        &self.attachment.container_id
    }

    /// The endpoint as its node's agent reports it now.
    pub fn endpoint(&self) -> Result<Endpoint> {
        let id = format!("container-id:{}", self.attachment.container_id);
        self.client
            .endpoint_get(&id)
            .with_context(|| format!("pod {}: GET /v1/endpoint/{id}", self.name))
    }

    pub fn endpoint_id(&self) -> Result<u16> {
        Ok(self.endpoint()?.id)
    }

    /// The endpoint's security identity (cluster-wide with etcd).
    pub fn identity(&self) -> Result<u32> {
        Ok(self.endpoint()?.status.identity.id)
    }

    /// A TCP server in the pod answering every connection with the pod's name.
    pub fn serve_tcp(&self, port: u16) -> Result<TcpServer> {
        TcpServer::start(&self.netns, port, format!("{}\n", self.name))
    }

    /// A UDP echo server in the pod.
    pub fn serve_udp(&self, port: u16) -> Result<UdpServer> {
        UdpServer::start(&self.netns, port)
    }

    /// True if a TCP handshake to `ip:port` completes and the server's line
    /// arrives, each within `timeout`.
    pub fn tcp_connect(&self, ip: Ipv4Addr, port: u16, timeout: Duration) -> bool {
        self.tcp_request(ip, port, timeout).is_some()
    }

    /// [`tcp_connect`](Self::tcp_connect) to an address of either family.
    pub fn tcp_connect_ip(&self, ip: std::net::IpAddr, port: u16, timeout: Duration) -> bool {
        traffic::tcp_request(&self.netns, ip, port, timeout).is_some()
    }

    /// The line a [`TcpServer`] answered with, if the connection worked.
    pub fn tcp_request(&self, ip: Ipv4Addr, port: u16, timeout: Duration) -> Option<String> {
        traffic::tcp_request(&self.netns, ip, port, timeout)
    }

    /// True if a datagram to `ip:port` comes back within `timeout`.
    pub fn udp_roundtrip(&self, ip: Ipv4Addr, port: u16, timeout: Duration) -> bool {
        traffic::udp_roundtrip(&self.netns, ip, port, timeout)
    }

    /// [`udp_roundtrip`](Self::udp_roundtrip) to an address of either family.
    pub fn udp_roundtrip_ip(&self, ip: std::net::IpAddr, port: u16, timeout: Duration) -> bool {
        traffic::udp_roundtrip(&self.netns, ip, port, timeout)
    }

    /// Runs a command inside the pod's namespace (`nsenter --net=`).
    pub fn exec(&self, args: &[&str]) -> Output {
        self.netns
            .exec(args)
            .unwrap_or_else(|e| panic!("pod {}: {e:#}", self.name))
    }
}

/// The CNI attachment; `DEL` on drop once `ADD` succeeded. (A failed `ADD`
/// undoes itself.)
struct Attachment {
    ctx: CniContext,
    container_id: String,
    pod_name: String,
    /// The Kubernetes namespace and UID of a pod the API server knows.
    k8s: Option<(String, String)>,
    pod_netns: PathBuf,
    conf: String,
    added: bool,
}

impl Attachment {
    /// Runs `nsenter --net=NODE -- cilium-cni` with the CNI environment and
    /// the configuration on stdin; stdout on success.
    fn call(&self, command: &str) -> Result<String> {
        let out = self.run(command)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "cilium-cni {command} in {} failed ({}): {}{}",
                self.ctx.node_netns.display(),
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }

    /// What a container runtime passes: the pod's name, and for a
    /// Kubernetes pod its namespace and UID too (as CRI runtimes do).
    fn cni_args(&self) -> String {
        let mut args = format!("IgnoreUnknown=1;K8S_POD_NAME={}", self.pod_name);
        if let Some((namespace, uid)) = &self.k8s {
            args.push_str(&format!(";K8S_POD_NAMESPACE={namespace};K8S_POD_UID={uid}"));
        }
        args
    }

    fn run(&self, command: &str) -> Result<Output> {
        let cni_dir = self
            .ctx
            .cni_bin
            .parent()
            .unwrap_or(Path::new("/"))
            .display()
            .to_string();
        let mut child = Command::new("nsenter")
            .arg(format!("--net={}", self.ctx.node_netns.display()))
            .arg("--")
            .arg(&self.ctx.cni_bin)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", &self.pod_netns)
            .env("CNI_IFNAME", POD_IFNAME)
            .env("CNI_PATH", cni_dir)
            .env("CNI_ARGS", self.cni_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run nsenter (util-linux) for cilium-cni")?;
        child
            .stdin
            .take()
            .context("no stdin pipe")?
            .write_all(self.conf.as_bytes())?;
        Ok(child.wait_with_output()?)
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if !self.added {
            return;
        }
        if let Err(e) = self.call("DEL") {
            // The agent may have been killed by the test: deleting the pod's
            // namespace still removes the veth pair.
            if std::thread::panicking() {
                eprintln!("pod {}: {e:#}", self.pod_name);
            }
        }
    }
}

/// The network configuration for one pod: the node agent's socket, and the
/// pod's labels as `args.cni.labels` (`k8s:app=web` → key `k8s:app`).
fn netconf(name: &str, labels: &[&str], socket: &Path) -> Result<String> {
    let labels = labels
        .iter()
        .map(|l| {
            let (key, value) = l.split_once('=').unwrap_or((l, ""));
            if key.is_empty() {
                bail!("pod {name}: label {l:?} has no key");
            }
            Ok(json!({"key": key, "value": value}))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({
        "cniVersion": "1.0.0",
        "name": "cilium",
        "type": crate::runtime::cni::PLUGIN_TYPE,
        "cilium-socket": socket.display().to_string(),
        "args": {"cni": {"labels": labels}},
    })
    .to_string())
}

/// (address, gateway) of the first IP in an ADD result.
/// The IPv4 address and gateway of an ADD result; `None` when it lists
/// IPv6 alone.
fn parse_result(text: &str) -> Result<Option<(Ipv4Addr, Ipv4Addr)>> {
    let v: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    let ips = v["ips"].as_array().context("no ips")?;
    let Some(ip) = ips.iter().find(|ip| {
        let addr = ip["address"].as_str().unwrap_or_default();
        !addr.contains(':')
    }) else {
        return Ok(None);
    };
    let addr = ip["address"].as_str().context("no address")?;
    let gw = ip["gateway"].as_str().context("no gateway")?;
    let addr = addr.split('/').next().unwrap_or(addr);
    Ok(Some((
        addr.parse().with_context(|| format!("address {addr:?}"))?,
        gw.parse().with_context(|| format!("gateway {gw:?}"))?,
    )))
}

/// The IPv6 address of a dual-stack ADD result, if it lists one.
fn parse_result_ipv6(text: &str) -> Option<Ipv6Addr> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v["ips"].as_array()?.iter().find_map(|ip| {
        let addr = ip["address"].as_str()?;
        addr.split('/').next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_stack_results_give_both_addresses() {
        let result = r#"{"ips":[{"address":"10.0.0.5/32","gateway":"10.0.0.1"},{"address":"f00d::5/128","gateway":"f00d::1"}]}"#;
        assert_eq!(
            parse_result(result).unwrap().unwrap().0,
            Ipv4Addr::new(10, 0, 0, 5)
        );
        let ipv6_only = r#"{"ips":[{"address":"f00d::5/128","gateway":"f00d::1"}]}"#;
        assert_eq!(parse_result(ipv6_only).unwrap(), None);
        assert_eq!(
            parse_result_ipv6(ipv6_only),
            Some("f00d::5".parse().unwrap())
        );
        assert_eq!(parse_result_ipv6(result), Some("f00d::5".parse().unwrap()));
        assert_eq!(
            parse_result_ipv6(r#"{"ips":[{"address":"10.0.0.5/32"}]}"#),
            None
        );
    }

    #[test]
    fn labels_become_cni_args_labels() {
        let conf: serde_json::Value =
            serde_json::from_str(&netconf("p", &["k8s:app=web", "tier"], Path::new("/s")).unwrap())
                .unwrap();
        assert_eq!(conf["cilium-socket"], "/s");
        assert_eq!(conf["type"], "cilium-cni");
        assert_eq!(conf["args"]["cni"]["labels"][0]["key"], "k8s:app");
        assert_eq!(conf["args"]["cni"]["labels"][0]["value"], "web");
        assert_eq!(conf["args"]["cni"]["labels"][1]["key"], "tier");
        assert!(netconf("p", &["=x"], Path::new("/s")).is_err());
    }

    #[test]
    fn parses_add_result() {
        let text = r#"{"cniVersion":"1.0.0","interfaces":[],"ips":[{"address":"10.1.0.5/32","gateway":"10.1.0.1","interface":1}]}"#;
        assert_eq!(
            parse_result(text).unwrap(),
            Some((Ipv4Addr::new(10, 1, 0, 5), Ipv4Addr::new(10, 1, 0, 1)))
        );
        assert!(parse_result("{}").is_err());
    }
}
