//! `cilium-demo-k8s`: the `make demo-k8s` walk-through, Cilium's Star Wars
//! demo driven by `kubectl` against a real Kubernetes control plane (etcd,
//! kube-apiserver, kube-controller-manager) on a two-node testbed cluster,
//! each node a network namespace with its own cilium-agent in Kubernetes
//! mode. The demo plays the kubelet: it creates the Pods on their nodes,
//! attaches them with `cilium-cni` and reports them running. The ships on
//! node1 reach the deathstar on node0 through its Service's ClusterIP; a
//! CiliumNetworkPolicy lets only the empire in, then only
//! `POST /v1/request-landing`. Everything it made goes when it ends.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use testbed::cluster::{Cluster, ClusterOptions, ClusterPod};
use testbed::kubernetes::ControlPlane;
use testbed::narrator::Narrator;
use testbed::starwars;
use testbed::{eventually, CliMonitor, HttpServer};

const NAMESPACE: &str = "default";

const DEATHSTAR_SERVICE: &str = "
apiVersion: v1
kind: Service
metadata:
  name: deathstar
spec:
  type: ClusterIP
  selector:
    org: empire
    class: deathstar
  ports:
  - port: 80
    protocol: TCP
";

/// How long the agents get to follow a change made with `kubectl`.
const FOLLOW: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The ships and the deathstar's web server. Field order is drop order:
/// the server stops before the pods are detached.
struct Fleet {
    _web: HttpServer,
    deathstar: ClusterPod,
    tiefighter: ClusterPod,
    xwing: ClusterPod,
}

fn run() -> Result<()> {
    let out = Narrator::new();
    out.step(
        "Starting a 2-node cluster: etcd, the Kubernetes control plane (kube-apiserver, \
         kube-controller-manager) and one cilium-agent per node in Kubernetes mode",
    );
    let cluster = Cluster::start_kubernetes(
        ClusterOptions {
            nodes: 2,
            etcd_members: 1,
        },
        &[],
    )?;
    for node in cluster.nodes() {
        out.detail(&format!(
            "{}  node IP {:<15} pod CIDR {}",
            node.name(),
            node.ip(),
            node.pod_cidr()
        ));
    }
    let plane = cluster.control_plane();
    out.kubectl(plane, &["get", "nodes", "-o", "wide"])?;
    out.step("The agents installed Cilium's CustomResourceDefinitions when they started");
    wait_for_crd(plane, "ciliumnetworkpolicies.cilium.io")?;
    out.kubectl(plane, &["get", "crd"])?;

    let result = launch_fleet(&cluster, &out).and_then(|fleet| {
        let result = walk_through(&cluster, &fleet, &out);
        if result.is_err() {
            eprintln!("{}", cluster.describe());
        }
        out.step("Cleaning up: detaching the pods (CNI DEL) while their agents still run");
        drop(fleet);
        result
    });
    if result.is_err() {
        for node in cluster.nodes() {
            eprintln!(
                "---- {} cilium-agent log tail ----\n{}",
                node.name(),
                node.agent().log_tail()
            );
        }
    }
    out.step(
        "Stopping the agents, the control plane and etcd; deleting the node namespaces and \
         the underlay",
    );
    drop(cluster);
    if result.is_ok() {
        out.step("Done");
    }
    result
}

fn launch_fleet(cluster: &Cluster, out: &Narrator) -> Result<Fleet> {
    out.step(&format!(
        "Creating the pods in namespace {NAMESPACE} as the kubelet would: the Pod object with \
         spec.nodeName, cilium-cni ADD on the node, then the Pod's status (IP, Ready)"
    ));
    let deathstar = ship(cluster, 0, "deathstar", &["org=empire", "class=deathstar"])?;
    let tiefighter = ship(
        cluster,
        1,
        "tiefighter",
        &["org=empire", "class=tiefighter"],
    )?;
    let xwing = ship(cluster, 1, "xwing", &["org=alliance", "class=xwing"])?;
    let web = HttpServer::start(deathstar.namespace(), 80, "deathstar")?;
    out.detail(&format!(
        "the deathstar serves HTTP on {}:80 (it answers each request with \
         `deathstar METHOD PATH`)",
        deathstar.ip()
    ));
    Ok(Fleet {
        _web: web,
        deathstar,
        tiefighter,
        xwing,
    })
}

/// A pod on `node`, reported running with its one container ready.
fn ship(cluster: &Cluster, node: usize, name: &str, labels: &[&str]) -> Result<ClusterPod> {
    let pod = cluster.k8s_pod(node, NAMESPACE, name, labels, &[])?;
    // `k8s_pod` writes the Pod's IP and conditions; the container's own
    // status makes `kubectl get pods` show it 1/1 ready.
    let status = serde_json::json!({"status": {"containerStatuses": [{
        "name": "main", "image": "busybox", "imageID": "", "ready": true,
        "started": true, "restartCount": 0, "state": {"running": {}},
    }]}});
    cluster.control_plane().kubectl(&[
        "patch",
        "pod",
        "-n",
        NAMESPACE,
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ])?;
    Ok(pod)
}

fn walk_through(cluster: &Cluster, fleet: &Fleet, out: &Narrator) -> Result<()> {
    let plane = cluster.control_plane();
    let (deathstar, tiefighter, xwing) = (&fleet.deathstar, &fleet.tiefighter, &fleet.xwing);

    out.step("A ClusterIP Service in front of the deathstar");
    out.apply(plane, "deathstar-service.yaml", DEATHSTAR_SERVICE)?;
    let cluster_ip: Ipv4Addr = plane
        .kubectl(&[
            "get",
            "svc",
            "deathstar",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])?
        .trim()
        .parse()
        .context("the deathstar Service's clusterIP")?;
    out.kubectl(plane, &["get", "pods,svc", "-o", "wide"])?;

    out.step(&format!(
        "node1's agent turned the Service and its EndpointSlice into a load-balancer entry: \
         {cluster_ip}:80 -> {}:80",
        deathstar.ip()
    ));
    let frontend = format!("{cluster_ip}:80");
    let backend = format!("{}:80", deathstar.ip());
    let balanced = eventually(FOLLOW, Duration::from_millis(200), || {
        cluster
            .node(1)
            .cli_ok(&["service", "list"])
            .is_ok_and(|list| list.contains(&frontend) && list.contains(&backend))
    });
    if !balanced {
        bail!("node1 has no service {frontend} -> {backend} after {FOLLOW:?}");
    }
    out.command_on(cluster.node(1), &["service", "list"])?;
    out.command_on(cluster.node(0), &["endpoint", "list"])?;

    let landing = format!("http://{cluster_ip}/v1/request-landing");
    let exhaust = format!("http://{cluster_ip}/v1/exhaust-port");
    out.step("No policy yet: every ship may land (node1 -> the ClusterIP -> node0)");
    for ship in [tiefighter, xwing] {
        out.curl(ship, &["-X", "POST", &landing])?;
    }

    out.step("Watching node0's drops and L7 requests with `cilium monitor` in the background");
    let node0 = cluster.node(0);
    let drops = CliMonitor::start(node0.agent(), &["--type", "drop"])?;
    let requests = CliMonitor::start(node0.agent(), &["--type", "l7"])?;

    out.step(
        "CiliumNetworkPolicy rule1, L3/L4: only org=empire may reach the deathstar, on 80/TCP",
    );
    out.apply(
        plane,
        "sw_l3_l4_policy.yaml",
        &starwars::as_cnp("rule1", starwars::L3_L4_POLICY),
    )?;
    let revisions = wait_enforced(plane, None)?;
    out.curl(tiefighter, &["-X", "POST", &landing])?;
    if out.curl(xwing, &["-X", "POST", &landing]).is_ok() {
        bail!("the xwing landed although rule1 denies it");
    }
    out.detail("(node0 drops the xwing's packets at the deathstar; its monitor reports:)");
    let line = drops
        .wait_for_line(|l| l.contains("drop"), Duration::from_secs(3))
        .context("node0's `cilium monitor --type drop` printed no drop line")?;
    out.detail(&line);

    out.step("Each agent reports in rule1's status that its node enforces it");
    out.prompt("$ kubectl get cnp rule1 -o yaml   # the status part");
    let yaml = plane.kubectl(&["get", "cnp", "rule1", "-o", "yaml"])?;
    let status = yaml
        .split_once("\nstatus:")
        .map(|(_, status)| format!("status:{status}"))
        .context("rule1 has no status")?;
    out.text(&status);
    out.command_on(node0, &["endpoint", "list"])?;

    out.step("But any empire ship can still reach every API of the deathstar:");
    out.curl(tiefighter, &["-X", "PUT", &exhaust])?;

    out.step("rule1 updated with an L7 rule: the empire may only POST /v1/request-landing");
    out.apply(
        plane,
        "sw_l3_l4_l7_policy.yaml",
        &starwars::as_cnp("rule1", starwars::L7_POLICY),
    )?;
    wait_enforced(plane, Some(revisions))?;
    out.curl(tiefighter, &["-X", "POST", &landing])?;
    let denied = out.curl(tiefighter, &["-X", "PUT", &exhaust])?;
    if !denied.contains("Access denied") {
        bail!("PUT /v1/exhaust-port was not denied: {denied:?}");
    }
    out.detail("(node0's proxy judged the request; its monitor reports:)");
    let line = requests
        .wait_for_line(|l| l.contains("Denied"), Duration::from_secs(3))
        .context("node0's `cilium monitor --type l7` printed no denied request")?;
    out.detail(&line);
    if out.curl(xwing, &["-X", "POST", &landing]).is_ok() {
        bail!("the xwing landed although rule1 denies it");
    }
    Ok(())
}

/// Waits until the API server serves `crd` (the agents install it at start).
fn wait_for_crd(plane: &ControlPlane, crd: &str) -> Result<()> {
    let established = || {
        plane
            .kubectl(&[
                "get",
                "crd",
                crd,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
            ])
            .is_ok_and(|status| status.trim() == "True")
    };
    if !eventually(FOLLOW, Duration::from_millis(200), established) {
        bail!("CRD {crd} not established after {FOLLOW:?}");
    }
    Ok(())
}

/// Both nodes' `localPolicyRevision` in rule1's status, once both report
/// it enforced, at revisions past `after` (the previous version's).
fn wait_enforced(plane: &ControlPlane, after: Option<[u64; 2]>) -> Result<[u64; 2]> {
    let read = || -> Result<[Option<u64>; 2]> {
        let text = plane.kubectl(&["get", "cnp", "rule1", "-o", "json"])?;
        let object: serde_json::Value = serde_json::from_str(&text)?;
        let nodes = &object["status"]["nodes"];
        Ok(["node0", "node1"].map(|node| {
            let entry = &nodes[node];
            (entry["enforcing"] == true && entry["ok"] == true)
                .then(|| entry["localPolicyRevision"].as_u64())
                .flatten()
        }))
    };
    let past = |seen: [Option<u64>; 2]| -> Option<[u64; 2]> {
        let [Some(a), Some(b)] = seen else {
            return None;
        };
        match after {
            Some([a0, b0]) if a <= a0 || b <= b0 => None,
            _ => Some([a, b]),
        }
    };
    let mut last = Ok([None, None]);
    let mut enforced = None;
    eventually(FOLLOW, Duration::from_millis(100), || {
        last = read();
        enforced = last.as_ref().ok().and_then(|seen| past(*seen));
        enforced.is_some()
    });
    enforced.with_context(|| {
        format!("rule1 is not enforced on both nodes after {FOLLOW:?}; status: {last:?}")
    })
}
