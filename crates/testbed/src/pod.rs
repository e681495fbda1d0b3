//! A pod as a CNI plugin would build it: a network namespace, a veth pair
//! (host side `lxc…` in the agent's namespace, `eth0` in the pod), an IP
//! from the agent's IPAM, routes via the node's router IP, and an endpoint
//! registered with `PUT /v1/endpoint/0`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use api::{endpoint_state, Client, Endpoint, EndpointChangeRequest, LabelConfigurationSpec};

use crate::agent::Agent;
use crate::netns::NetNs;
use crate::traffic::{self, TcpServer, UdpServer};
use crate::{cmd, unique};

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// One pod. Dropping it deletes the endpoint, the veth, the host route, the
/// namespace and the IP, ignoring what is already gone.
pub struct Pod {
    // Field order is drop order: the agent-side and host-side resources go
    // first, the namespace last.
    resources: PodResources,
    netns: NetNs,
    name: String,
    ip: Ipv4Addr,
    gateway: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
    endpoint_id: u16,
    host_ifname: String,
    mac: String,
}

impl Pod {
    /// Builds the pod and registers it with `labels` (`source:key=value`),
    /// returning once the agent reports the endpoint ready.
    pub fn create(agent: &Agent, name: &str, labels: &[&str]) -> Result<Pod> {
        Pod::create_family(agent, name, labels, false)
    }

    /// Like [`Pod::create`], with an IPv6 address too (the agent must have
    /// IPv6 enabled): `/128` without duplicate address detection, the
    /// default IPv6 route via the node's IPv6 router address, whose
    /// neighbour advertisement comes from the datapath.
    pub fn create_dual_stack(agent: &Agent, name: &str, labels: &[&str]) -> Result<Pod> {
        Pod::create_family(agent, name, labels, true)
    }

    fn create_family(agent: &Agent, name: &str, labels: &[&str], dual: bool) -> Result<Pod> {
        let client = agent.client();
        let (pid, n) = unique::next_pair();
        let mut resources = PodResources::new(client.clone());

        let family = (!dual).then_some("ipv4");
        let ipam = client
            .ipam_allocate_family(Some(&format!("testbed/{name}")), family)
            .with_context(|| format!("pod {name}: POST /v1/ipam"))?;
        let ip_text = ipam
            .ipv4
            .as_ref()
            .map(|a| a.ip.clone())
            .or(ipam.address.ipv4.clone())
            .with_context(|| format!("pod {name}: IPAM answer has no IPv4 address: {ipam:?}"))?;
        // Released by address alone (`DELETE /v1/ipam/10.200.0.5`).
        resources.ip = Some(ip_text.split('/').next().unwrap_or(&ip_text).to_string());
        let ip = parse_ipv4(&ip_text).with_context(|| format!("pod {name}: IPAM address"))?;
        let gateway_text = ipam
            .ipv4
            .as_ref()
            .map(|a| a.gateway.clone())
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| ipam.host_addressing.ipv4.ip.clone());
        let gateway =
            parse_ipv4(&gateway_text).with_context(|| format!("pod {name}: IPAM gateway"))?;
        let v6 = match (&ipam.ipv6, dual) {
            (Some(a), true) => {
                resources.ip6 = Some(a.ip.clone());
                Some((
                    a.ip.parse::<Ipv6Addr>()
                        .with_context(|| format!("pod {name}: IPAM IPv6 address"))?,
                    a.gateway
                        .parse::<Ipv6Addr>()
                        .with_context(|| format!("pod {name}: IPAM IPv6 gateway"))?,
                ))
            }
            (None, true) => bail!("pod {name}: the agent handed out no IPv6 address: {ipam:?}"),
            _ => None,
        };

        let netns = NetNs::create(&unique::netns_name(pid, n, name))?;
        if v6.is_some() {
            // Routes are written here: no router advertisements, no
            // solicitations.
            for scope in ["all", "default"] {
                netns.sysctl(&format!("net.ipv6.conf.{scope}.accept_ra"), "0")?;
                netns.sysctl(&format!("net.ipv6.conf.{scope}.router_solicitations"), "0")?;
            }
        } else {
            // IPv6 would only add router solicitations the datapath drops.
            netns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
            netns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
        }

        let host_ifname = unique::host_ifname(pid, n);
        cmd::ip(&[
            "link",
            "add",
            &host_ifname,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            netns.name(),
        ])
        .with_context(|| format!("pod {name}: creating veth {host_ifname}"))?;
        resources.host_ifname = Some(host_ifname.clone());
        // Missing when IPv6 is off on the host altogether: nothing to do then.
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{host_ifname}/disable_ipv6"),
            if v6.is_some() { "0" } else { "1" },
        );
        cmd::ip(&["link", "set", &host_ifname, "up"])?;
        let host_link = cmd::link_info(None, &host_ifname)?;

        let ns = netns.name();
        let cidr = format!("{ip}/32");
        let gw = gateway.to_string();
        for args in [
            vec!["-n", ns, "link", "set", "lo", "up"],
            vec!["-n", ns, "link", "set", "eth0", "up"],
            vec!["-n", ns, "addr", "add", &cidr, "dev", "eth0"],
            vec![
                "-n", ns, "route", "add", &gw, "dev", "eth0", "scope", "link",
            ],
            vec![
                "-n", ns, "route", "add", "default", "via", &gw, "dev", "eth0",
            ],
            vec![
                "-n",
                ns,
                "neigh",
                "replace",
                &gw,
                "lladdr",
                &host_link.mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        ] {
            cmd::ip(&args).with_context(|| format!("pod {name}: configuring eth0"))?;
        }
        if let Some((ip6, gateway6)) = v6 {
            let cidr6 = format!("{ip6}/128");
            let gw6 = gateway6.to_string();
            for args in [
                vec![
                    "-n", ns, "-6", "addr", "add", &cidr6, "dev", "eth0", "nodad",
                ],
                vec!["-n", ns, "-6", "route", "add", &gw6, "dev", "eth0"],
                vec![
                    "-n", ns, "-6", "route", "add", "default", "via", &gw6, "dev", "eth0",
                ],
            ] {
                cmd::ip(&args).with_context(|| format!("pod {name}: configuring IPv6 on eth0"))?;
            }
            // Goes with the veth.
            cmd::ip(&["-6", "route", "replace", &cidr6, "dev", &host_ifname])
                .with_context(|| format!("pod {name}: host IPv6 route"))?;
        }
        let pod_link = cmd::link_info(Some(ns), "eth0")?;
        cmd::ip(&["route", "replace", &cidr, "dev", &host_ifname])
            .with_context(|| format!("pod {name}: host route"))?;
        resources.host_route = Some((cidr, host_ifname.clone()));

        let request = EndpointChangeRequest {
            container_id: Some(ns.to_string()),
            container_name: Some(name.to_string()),
            interface_name: Some(host_ifname.clone()),
            interface_index: host_link.ifindex,
            mac: Some(pod_link.mac.clone()),
            host_mac: Some(host_link.mac.clone()),
            addressing: api::AddressPair {
                ipv4: Some(ip.to_string()),
                ipv6: v6.map(|(ip6, _)| ip6.to_string()),
            },
            labels: labels.iter().map(|l| l.to_string()).collect(),
            netns: Some(netns.path().display().to_string()),
            ..Default::default()
        };
        let endpoint = client
            .endpoint_put(0, &request)
            .with_context(|| format!("pod {name}: PUT /v1/endpoint/0 {request:?}"))?;
        if endpoint.id == 0 {
            bail!("pod {name}: the agent answered PUT /v1/endpoint/0 without an id: {endpoint:?}");
        }
        resources.endpoint_id = Some(endpoint.id);

        let pod = Pod {
            resources,
            netns,
            name: name.to_string(),
            ip,
            gateway,
            ip6: v6.map(|(ip6, _)| ip6),
            endpoint_id: endpoint.id,
            host_ifname,
            mac: pod_link.mac,
        };
        pod.wait_ready()?;
        Ok(pod)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's name (`ip -n NAME`).
    pub fn netns(&self) -> &str {
        self.netns.name()
    }

    pub fn namespace(&self) -> &NetNs {
        &self.netns
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The node's router IP, the pod's default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The pod's IPv6 address ([`Pod::create_dual_stack`] pods).
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.ip6
    }

    pub fn endpoint_id(&self) -> u16 {
        self.endpoint_id
    }

    pub fn host_ifname(&self) -> &str {
        &self.host_ifname
    }

    /// MAC of the pod's `eth0`.
    pub fn mac(&self) -> &str {
        &self.mac
    }

    /// The endpoint as the agent reports it now.
    pub fn endpoint(&self, agent: &Agent) -> Result<Endpoint> {
        agent
            .client()
            .endpoint_get(&self.endpoint_id.to_string())
            .with_context(|| format!("pod {}: GET /v1/endpoint/{}", self.name, self.endpoint_id))
    }

    /// The endpoint's current security identity.
    pub fn identity(&self, agent: &Agent) -> Result<u32> {
        Ok(self.endpoint(agent)?.status.identity.id)
    }

    /// Replaces the pod's labels (`PATCH /v1/endpoint/{id}/labels`).
    pub fn set_labels(&self, agent: &Agent, labels: &[&str]) -> Result<()> {
        let spec = LabelConfigurationSpec {
            user: labels.iter().map(|l| l.to_string()).collect(),
        };
        agent
            .client()
            .endpoint_labels_patch(&self.endpoint_id.to_string(), &spec)
            .with_context(|| {
                format!(
                    "pod {}: PATCH /v1/endpoint/{}/labels {spec:?}",
                    self.name, self.endpoint_id
                )
            })
    }

    /// Waits until the endpoint has realized policy revision `revision`.
    pub fn wait_for_policy_revision(
        &self,
        agent: &Agent,
        revision: u64,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let ep = self.endpoint(agent)?;
            let realized = ep.status.policy.realized.policy_revision;
            if realized >= revision {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "pod {} (endpoint {}) still at policy revision {realized} after {timeout:?}, waiting for {revision}",
                    self.name,
                    self.endpoint_id
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A TCP server in the pod answering every connection with the pod's name.
    pub fn serve_tcp(&self, port: u16) -> Result<TcpServer> {
        TcpServer::start(&self.netns, port, format!("{}\n", self.name))
    }

    /// An HTTP/1.1 server in the pod answering every request with 200.
    pub fn serve_http(&self, port: u16) -> Result<crate::HttpServer> {
        crate::HttpServer::start(&self.netns, port, &self.name)
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

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ep = self
                .resources
                .client
                .endpoint_get(&self.endpoint_id.to_string())
                .with_context(|| {
                    format!("pod {}: GET /v1/endpoint/{}", self.name, self.endpoint_id)
                })?;
            if ep.status.state == endpoint_state::READY {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "pod {}: endpoint {} is {:?}, not {:?}, {READY_TIMEOUT:?} after creation",
                    self.name,
                    self.endpoint_id,
                    ep.status.state,
                    endpoint_state::READY
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What a pod holds on the agent and in the host namespace, released in
/// reverse order of creation. Every field is set as soon as the resource
/// exists, so a failure half-way through [`Pod::create`] frees exactly what
/// was made.
struct PodResources {
    client: Client,
    endpoint_id: Option<u16>,
    /// (`IP/32`, host veth)
    host_route: Option<(String, String)>,
    host_ifname: Option<String>,
    ip: Option<String>,
    ip6: Option<String>,
}

impl PodResources {
    fn new(client: Client) -> PodResources {
        PodResources {
            client,
            endpoint_id: None,
            host_route: None,
            host_ifname: None,
            ip: None,
            ip6: None,
        }
    }
}

impl Drop for PodResources {
    fn drop(&mut self) {
        if let Some(id) = self.endpoint_id.take() {
            let _ = self.client.endpoint_delete(&id.to_string());
        }
        if let Some((cidr, dev)) = self.host_route.take() {
            cmd::run_ignoring_errors("ip", &["route", "del", &cidr, "dev", &dev]);
        }
        if let Some(dev) = self.host_ifname.take() {
            // Deleting one end removes the pair.
            cmd::run_ignoring_errors("ip", &["link", "del", "dev", &dev]);
        }
        if let Some(ip) = self.ip.take() {
            let _ = self.client.ipam_release(&ip);
        }
        if let Some(ip) = self.ip6.take() {
            let _ = self.client.ipam_release(&ip);
        }
    }
}

/// `10.0.0.5` or `10.0.0.5/32`.
fn parse_ipv4(text: &str) -> Result<Ipv4Addr> {
    let addr = text.split('/').next().unwrap_or(text);
    addr.parse()
        .with_context(|| format!("{text:?} is not an IPv4 address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_with_and_without_prefix() {
        assert_eq!(
            parse_ipv4("10.200.0.5").unwrap(),
            Ipv4Addr::new(10, 200, 0, 5)
        );
        assert_eq!(
            parse_ipv4("10.200.0.5/32").unwrap(),
            Ipv4Addr::new(10, 200, 0, 5)
        );
        assert!(parse_ipv4("fd00::1").is_err());
    }
}
