//! Several nodes on this machine: each node a network namespace with its
//! own `cilium-agent` (own socket, state directory and bpffs root, started
//! inside the namespace with `nsenter --net=`), the nodes joined by an
//! underlay (a bridge in the root namespace, a veth per node carrying the
//! node IP), the cluster state in a real etcd listening on the bridge
//! address (or, with `etcd_members: 0`, each agent's embedded store). Pods
//! are attached inside their node by running `cilium-cni` there.
//!
//! Dropping the [`Cluster`] stops the agents, etcd, and deletes the node
//! namespaces (with them the agents' devices) and the bridge, also when a
//! test panics; on a panic it first prints each node's view (nodes,
//! ipcache, identities, kvstore keys; the agents print their log tails).

pub mod dns_server;
pub mod outside;
pub mod pod;
pub mod underlay;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use api::Client;

use crate::agent::{find_binary, Agent, AgentOptions};
use crate::etcd::EtcdCluster;
use crate::kubernetes::ControlPlane;
use crate::netns::NetNs;
use crate::runtime::cni::{CNI_BIN_ENV, PLUGIN_TYPE};
use crate::{kubernetes, unique, wait};

pub use dns_server::{DnsServer, DnsServerConfig};
pub use outside::OutsideHost;
pub use pod::ClusterPod;
pub use underlay::Addressing;

/// How long [`Cluster::start`] waits for every agent to list every node.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Number of nodes (at least one).
    pub nodes: usize,
    /// etcd members (1 or 3); 0 runs every agent on its embedded store
    /// (a single node with no etcd).
    pub etcd_members: usize,
}

/// One node: its namespace, its agent and its place on the underlay.
pub struct Node {
    // Drop order: the agent stops before its namespace goes.
    agent: Agent,
    netns: NetNs,
    index: usize,
    name: String,
    ip: Ipv4Addr,
    /// The node's IPv6 underlay address, on a dual-stack underlay.
    ip6: Option<std::net::Ipv6Addr>,
    pod_cidr: String,
    /// The underlay veth's root-namespace side (the bridge port).
    port: String,
}

impl Node {
    pub fn index(&self) -> usize {
        self.index
    }

    /// `--node-name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's underlay IP (`--node-ip`), the VXLAN tunnel endpoint.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The node's IPv6 underlay address, when the cluster was started with
    /// [`Cluster::start_dual_stack_underlay`].
    pub fn ip6(&self) -> Option<std::net::Ipv6Addr> {
        self.ip6
    }

    /// `--ipv4-range`.
    pub fn pod_cidr(&self) -> &str {
        &self.pod_cidr
    }

    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    pub fn agent_mut(&mut self) -> &mut Agent {
        &mut self.agent
    }

    /// A client for the node agent's API.
    pub fn client(&self) -> Client {
        self.agent.client()
    }

    /// `cilium -H unix://SOCK ARGS...` against this node's agent.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.agent.cli(args)
    }

    /// Like [`Node::cli`], failing unless it exits 0; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> Result<String> {
        self.agent
            .cli_ok(args)
            .with_context(|| format!("on node {}", self.name))
    }

    /// The node's network namespace.
    pub fn netns(&self) -> &NetNs {
        &self.netns
    }

    /// The root-namespace side of the node's underlay veth.
    pub fn underlay_port(&self) -> &str {
        &self.port
    }

    /// Names of the nodes this agent lists in `GET /v1/cluster/nodes`.
    pub fn known_nodes(&self) -> Result<Vec<String>> {
        let status = self
            .client()
            .cluster_nodes()
            .with_context(|| format!("node {}: GET /v1/cluster/nodes", self.name))?;
        let mut names: Vec<String> = status.nodes_added.into_iter().map(|n| n.name).collect();
        names.sort();
        Ok(names)
    }

    /// The node's view for failure reports: nodes, ipcache, kvstore keys.
    pub fn describe(&self) -> String {
        let mut out = format!("==== node {} ({}) ====\n", self.name, self.ip);
        for args in [
            &["node", "list"][..],
            &["bpf", "ipcache", "list"],
            &["identity", "list"],
            &["kvstore", "get", "--recursive", "cilium/state"],
        ] {
            let o = self.cli(args);
            out.push_str(&format!(
                "$ cilium {}\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        out
    }
}

/// N nodes, the underlay between them and (optionally) etcd.
pub struct Cluster {
    // Drop order: agents (and node namespaces) first, then etcd, then the
    // bridge.
    nodes: Vec<Node>,
    control_plane: Option<ControlPlane>,
    etcd: Option<EtcdCluster>,
    bridge: underlay::Bridge,
    addressing: Addressing,
    cni_bin: PathBuf,
    /// Extra flags every agent gets.
    agent_args: Vec<String>,
}

impl Cluster {
    /// Builds the underlay, starts etcd on the bridge address, then one
    /// agent per node, and waits until every agent lists every node.
    /// Start it on the thread that keeps it (agents die with their
    /// starting thread, see [`Agent::start_with`]).
    pub fn start(options: ClusterOptions) -> Result<Cluster> {
        Cluster::start_with_agent_args(options, &[])
    }

    /// Like [`Cluster::start`], every agent also getting `agent_args`
    /// (feature flags such as `--enable-endpoint-health-checking=true`).
    pub fn start_with_agent_args(options: ClusterOptions, agent_args: &[&str]) -> Result<Cluster> {
        Cluster::start_inner(options, agent_args, false, false)
    }

    /// Like [`Cluster::start_with_agent_args`], every node also having an
    /// IPv6 address on the underlay (the agents find it: `--ipv6-node
    /// auto`). The tunnel stays IPv4.
    pub fn start_dual_stack_underlay(
        options: ClusterOptions,
        agent_args: &[&str],
    ) -> Result<Cluster> {
        Cluster::start_inner(options, agent_args, false, true)
    }

    /// Like [`Cluster::start_with_agent_args`], with a real Kubernetes
    /// control plane listening on the bridge: every node is registered as
    /// a Ready Node and its agent runs in Kubernetes mode
    /// (`--k8s-kubeconfig-path`). See [`crate::kubernetes`].
    pub fn start_kubernetes(options: ClusterOptions, agent_args: &[&str]) -> Result<Cluster> {
        Cluster::start_inner(options, agent_args, true, false)
    }

    fn start_inner(
        options: ClusterOptions,
        agent_args: &[&str],
        kubernetes: bool,
        underlay6: bool,
    ) -> Result<Cluster> {
        if options.nodes == 0 {
            bail!("a cluster needs at least one node");
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            bail!("the cluster testbed needs root (namespaces, veths, bpffs)");
        }
        let cni_bin = find_binary(PLUGIN_TYPE, CNI_BIN_ENV)?;
        let (pid, n) = unique::next_pair();
        let addressing = Addressing::pick(pid.wrapping_mul(7).wrapping_add(n))?;
        let bridge = underlay::Bridge::create(
            &format!("cbr{:06x}{:02x}", pid & 0xff_ffff, n & 0xff),
            addressing.bridge_ip(),
        )?;
        let etcd = match options.etcd_members {
            0 => None,
            members => Some(
                EtcdCluster::start_on(members, addressing.bridge_ip())
                    .context("starting etcd on the underlay bridge")?,
            ),
        };
        let control_plane = match kubernetes {
            false => None,
            true => Some(
                ControlPlane::start(addressing.bridge_ip())
                    .context("starting the Kubernetes control plane on the underlay bridge")?,
            ),
        };
        let mut agent_args: Vec<String> = agent_args.iter().map(|a| a.to_string()).collect();
        if let Some(plane) = &control_plane {
            for index in 0..options.nodes {
                plane.register_node(&format!("node{index}"), addressing.node_ip(index))?;
            }
            agent_args.push("--k8s-kubeconfig-path".into());
            agent_args.push(plane.kubeconfig().display().to_string());
        }
        let mut cluster = Cluster {
            nodes: Vec::new(),
            control_plane,
            etcd,
            bridge,
            addressing,
            cni_bin,
            agent_args,
        };
        for index in 0..options.nodes {
            let node = cluster
                .start_node(pid, n, index, underlay6)
                .with_context(|| format!("starting node {index}"))?;
            cluster.nodes.push(node);
        }
        if cluster.etcd.is_some() {
            cluster.wait_discovered(DISCOVERY_TIMEOUT)?;
        }
        Ok(cluster)
    }

    fn start_node(&self, pid: u32, n: u32, index: usize, underlay6: bool) -> Result<Node> {
        let name = format!("node{index}");
        let netns = NetNs::create(&format!("cilc-{pid}-{n}-{name}"))?;
        netns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
        netns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
        let ip = self.addressing.node_ip(index);
        let port = format!("cnp{:06x}{:02x}{index:x}", pid & 0xff_ffff, n & 0xff);
        underlay::attach_node(&self.bridge, &port, &netns, ip, self.addressing.bridge_ip())?;
        let ip6 = underlay6.then(|| self.addressing.node_ip6(index));
        if let Some(ip6) = ip6 {
            underlay::add_node_ipv6(&netns, ip6)?;
        }
        // Pod traffic to an address no node has claimed must not leave
        // through the underlay's default route into the machine's network.
        crate::cmd::ip(&[
            "-n",
            netns.name(),
            "route",
            "add",
            "unreachable",
            &self.addressing.cluster_pool(),
        ])?;
        let pod_cidr = self.addressing.pod_cidr(index);
        let mut args: Vec<String> = [
            "--node-name",
            &name,
            "--node-ip",
            &ip.to_string(),
            "--tunnel-protocol",
            "vxlan",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Socket LB attaches to a cgroup every node shares: off, unless
        // the test asks for it (with a --cgroup-root of its own).
        if !self.agent_args.iter().any(|a| a == "--enable-socket-lb") {
            args.extend(["--enable-socket-lb".to_string(), "false".to_string()]);
        }
        args.extend(self.agent_args.iter().cloned());
        if let Some(etcd) = &self.etcd {
            args.extend([
                "--kvstore".to_string(),
                "etcd".to_string(),
                "--kvstore-opt".to_string(),
                etcd.kvstore_opt(),
            ]);
        }
        let options = AgentOptions {
            ipv4_range: Some(pod_cidr.clone()),
            extra_args: args,
            ..Default::default()
        };
        let agent = Agent::start_in(options, Some(netns.path()))?;
        Ok(Node {
            agent,
            netns,
            index,
            name,
            ip,
            ip6,
            pod_cidr,
            port,
        })
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, index: usize) -> &Node {
        &self.nodes[index]
    }

    pub fn node_mut(&mut self, index: usize) -> &mut Node {
        &mut self.nodes[index]
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn addressing(&self) -> Addressing {
        self.addressing
    }

    /// The bridge's address, where etcd listens.
    pub fn underlay_gateway(&self) -> Ipv4Addr {
        self.addressing.bridge_ip()
    }

    /// A pod on node `node` with `labels` (`source:key=value`), attached by
    /// `cilium-cni ADD` in the node's namespace. Keep pods declared after
    /// the cluster, so they are dropped (CNI `DEL`) while its agent runs.
    pub fn pod(&self, node: usize, name: &str, labels: &[&str]) -> Result<ClusterPod> {
        let n = self
            .nodes
            .get(node)
            .with_context(|| format!("no node {node} (the cluster has {})", self.nodes.len()))?;
        let ctx = pod::CniContext {
            cni_bin: self.cni_bin.clone(),
            node_netns: n.netns.path(),
            socket: n.agent.socket().to_path_buf(),
        };
        ClusterPod::create(ctx, node, name, labels, None)
    }

    /// The Kubernetes control plane of a [`Cluster::start_kubernetes`] cluster.
    pub fn control_plane(&self) -> &ControlPlane {
        self.control_plane
            .as_ref()
            .expect("a cluster started with Cluster::start_kubernetes")
    }

    /// A pod as the kubelet of node `node` makes one: the Pod object
    /// `namespace/name` (with `labels`, `key=value`, and `ports`, named
    /// container ports `name=port`) is created with `spec.nodeName`, then
    /// `cilium-cni ADD` runs with the pod's namespace, name and UID in
    /// `CNI_ARGS`, then the Pod's status gets its IP and `Ready`.
    pub fn k8s_pod(
        &self,
        node: usize,
        namespace: &str,
        name: &str,
        labels: &[&str],
        ports: &[&str],
    ) -> Result<ClusterPod> {
        let plane = self.control_plane();
        let n = self
            .nodes
            .get(node)
            .with_context(|| format!("no node {node} (the cluster has {})", self.nodes.len()))?;
        let object = kubernetes::pod_object(namespace, name, &n.name, labels, ports)?;
        // A new namespace's default service account appears a moment
        // after the namespace; until then the API server refuses pods.
        let mut created = plane.apply(&object);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while created.is_err() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            created = plane.apply(&object);
        }
        created.with_context(|| format!("creating Pod {namespace}/{name}"))?;
        let uid = plane.kubectl(&[
            "get",
            "pod",
            "-n",
            namespace,
            name,
            "-o",
            "jsonpath={.metadata.uid}",
        ])?;
        let ctx = pod::CniContext {
            cni_bin: self.cni_bin.clone(),
            node_netns: n.netns.path(),
            socket: n.agent.socket().to_path_buf(),
        };
        let pod = ClusterPod::create(ctx, node, name, &[], Some((namespace, uid.trim())))?;
        // Both addresses of a dual-stack pod, as its kubelet reports them.
        let v4 = pod.ipv4().map(std::net::IpAddr::from);
        let ips: Vec<_> = v4.into_iter().chain(pod.ip6().map(Into::into)).collect();
        plane.set_pod_ips_ready(namespace, name, &ips, true)?;
        Ok(pod)
    }

    /// A host on the underlay that is no node (`world` to the agents),
    /// routing every node's pod CIDR through that node. Its namespace and
    /// port go when it is dropped; keep it declared after the cluster.
    pub fn outside_host(&self, name: &str) -> Result<OutsideHost> {
        let (pid, n) = unique::next_pair();
        let routes: Vec<(String, Ipv4Addr)> = self
            .nodes
            .iter()
            .map(|node| (node.pod_cidr.clone(), node.ip))
            .collect();
        OutsideHost::create(
            &self.bridge,
            &format!("cilo-{pid}-{n}-{name}"),
            &format!("cop{:06x}{:02x}", pid & 0xff_ffff, n & 0xff),
            self.addressing.outside_ip(),
            self.addressing.bridge_ip(),
            &routes,
        )
        .with_context(|| format!("starting outside host {name}"))
    }

    /// `cilium policy import` of `yaml` on every node (each agent holds its
    /// own rules).
    pub fn import_policy(&self, yaml: &str) -> Result<()> {
        for node in &self.nodes {
            let path = node.agent.temp_dir().join("policy.yaml");
            std::fs::write(&path, yaml)?;
            node.cli_ok(&["policy", "import", &path.display().to_string()])?;
        }
        Ok(())
    }

    /// SIGKILL node `index`'s agent (a crash); its datapath stays loaded.
    pub fn kill_agent(&mut self, index: usize) {
        self.nodes[index].agent.kill();
    }

    /// Starts node `index`'s agent again (same flags, state and pins) and
    /// waits until it answers `/v1/healthz`.
    pub fn start_agent(&mut self, index: usize) -> Result<()> {
        self.nodes[index].agent.start_again()
    }

    /// The etcd cluster (kill a member, stop all, restart all); `None` with
    /// the embedded store.
    pub fn etcd(&mut self) -> Option<&mut EtcdCluster> {
        self.etcd.as_mut()
    }

    /// Takes node `index` off the underlay (carrier down on its port).
    pub fn cut_underlay(&self, index: usize) -> Result<()> {
        underlay::set_port_up(&self.nodes[index].port, false)
    }

    /// Puts node `index` back on the underlay.
    pub fn restore_underlay(&self, index: usize) -> Result<()> {
        underlay::set_port_up(&self.nodes[index].port, true)
    }

    /// Waits until every agent lists every node in `GET /v1/cluster/nodes`.
    pub fn wait_discovered(&self, timeout: Duration) -> Result<()> {
        let mut expected: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        expected.sort();
        let mut last = Vec::new();
        let ok = wait::eventually(timeout, Duration::from_millis(100), || {
            last = self
                .nodes
                .iter()
                .map(|n| n.known_nodes().map_err(|e| format!("{e:#}")))
                .collect();
            last.iter().all(|k| k.as_ref() == Ok(&expected))
        });
        if !ok {
            bail!(
                "after {timeout:?} the agents do not all list nodes {expected:?}: {}",
                self.nodes
                    .iter()
                    .zip(&last)
                    .map(|(n, k)| format!("{} lists {k:?}", n.name))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        Ok(())
    }

    /// Every node's view (for failure messages and bug reports).
    pub fn describe(&self) -> String {
        self.nodes.iter().map(Node::describe).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Each agent's own Drop prints its log tail.
            eprintln!("{}", self.describe());
        }
        // Agents first: they deregister while etcd still runs.
        for node in &mut self.nodes {
            node.agent.stop();
        }
    }
}
