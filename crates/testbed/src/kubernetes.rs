//! The real Kubernetes control plane for tests: etcd, kube-apiserver and
//! kube-controller-manager built from the upstream Go modules and started by
//! `scripts/k8s-control-plane.sh` (see docs/kubernetes-control-plane.md), in
//! a private directory, as this test's own processes. Dropping it stops
//! them and removes the directory.
//!
//! There is no kubelet: tests play its part (create the Pod with
//! `spec.nodeName`, run the CNI plugin, write the Pod's status).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::unique;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/k8s-control-plane.sh")
}

/// Builds the control plane's binaries unless they are cached; returns
/// their directory.
pub fn binaries() -> Result<PathBuf> {
    let out = Command::new("bash")
        .arg(script())
        .arg("build")
        .stderr(Stdio::inherit())
        .output()
        .context("running scripts/k8s-control-plane.sh build")?;
    if !out.status.success() {
        bail!("scripts/k8s-control-plane.sh build failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bin = stdout.lines().last().unwrap_or_default().trim();
    Ok(PathBuf::from(bin))
}

/// The cluster CIDRs kube-controller-manager gives each Node a /24 and a
/// /64 of.
pub const CLUSTER_CIDRS: &str = "10.244.0.0/16,fd00:10:244::/56";

/// The Service ranges, one per family: kube-apiserver allocates a
/// dual-stack Service a ClusterIP from each (IPv4 first, the primary
/// family of single-stack Services that name none).
pub const SERVICE_CIDRS: &str = "10.96.0.0/16,fd00:10:96::/112";

pub struct ControlPlane {
    dir: PathBuf,
    bin: PathBuf,
    kubeconfig: PathBuf,
}

impl ControlPlane {
    /// Starts one with kube-apiserver listening on `bind` (an address the
    /// nodes' namespaces reach, such as the underlay bridge's).
    pub fn start(bind: Ipv4Addr) -> Result<ControlPlane> {
        let bin = binaries()?;
        let (pid, n) = unique::next_pair();
        let dir = std::env::temp_dir().join(format!("cilium-k8s-{pid}-{n}"));
        let out = Command::new("bash")
            .arg(script())
            .arg("up")
            .arg(&dir)
            .env("K8S_BIND_ADDRESS", bind.to_string())
            // Dual stack, as the agents: every Node gets an IPv4 and an
            // IPv6 pod CIDR (for --ipam kubernetes).
            .env("K8S_CLUSTER_CIDR", CLUSTER_CIDRS)
            .env("K8S_SERVICE_CIDR", SERVICE_CIDRS)
            // Nodes are registered by the tests with a Ready condition
            // nobody renews: the lifecycle controller would taint them.
            .env("K8S_CONTROLLERS", "*,-node-lifecycle-controller")
            .stderr(Stdio::inherit())
            .output()
            .context("running scripts/k8s-control-plane.sh up")?;
        let plane = ControlPlane {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            bin,
        };
        if !out.status.success() {
            bail!(
                "the Kubernetes control plane did not start ({}); logs in {}",
                out.status,
                plane.dir.display()
            );
        }
        Ok(plane)
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `kubectl ARGS` against this control plane; its stdout.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_with_input(args, None)
    }

    /// `kubectl apply -f -` of `yaml`.
    pub fn apply(&self, yaml: &str) -> Result<String> {
        self.kubectl_with_input(&["apply", "-f", "-"], Some(yaml))
    }

    /// `kubectl create -f -` of `yaml` (no last-applied annotation, so
    /// objects up to the API server's own size limit fit).
    pub fn create(&self, yaml: &str) -> Result<String> {
        self.kubectl_with_input(&["create", "-f", "-"], Some(yaml))
    }

    /// `kubectl delete -f -` of `yaml`.
    pub fn delete(&self, yaml: &str) -> Result<String> {
        self.kubectl_with_input(&["delete", "-f", "-"], Some(yaml))
    }

    fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        let mut child = Command::new(self.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running kubectl")?;
        let mut stdin = child.stdin.take().context("kubectl stdin")?;
        if let Some(input) = input {
            stdin.write_all(input.as_bytes())?;
        }
        drop(stdin);
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Registers node `name` as Ready, as its kubelet would.
    pub fn register_node(&self, name: &str, ip: Ipv4Addr) -> Result<()> {
        self.apply(&format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    kubernetes.io/hostname: {name}\n"
        ))?;
        let status = serde_json::json!({"status": {
            "addresses": [{"type": "InternalIP", "address": ip.to_string()}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "testbed"}],
        }});
        self.patch_status(&["node", name], &status)
    }

    /// Writes a pod's status as its kubelet would: its IP, and `Ready`
    /// (which puts it into its Services' endpoints) or not.
    pub fn set_pod_ready(
        &self,
        namespace: &str,
        name: &str,
        ip: Ipv4Addr,
        ready: bool,
    ) -> Result<()> {
        self.set_pod_ips_ready(namespace, name, &[ip.into()], ready)
    }

    /// [`set_pod_ready`](Self::set_pod_ready) for a pod with any addresses:
    /// `podIPs` lists them all (a dual-stack kubelet's order, IPv4 first),
    /// `podIP` is the first.
    pub fn set_pod_ips_ready(
        &self,
        namespace: &str,
        name: &str,
        ips: &[IpAddr],
        ready: bool,
    ) -> Result<()> {
        let first = ips
            .first()
            .with_context(|| format!("pod {namespace}/{name} has no address"))?;
        let pod_ips: Vec<serde_json::Value> = ips
            .iter()
            .map(|ip| serde_json::json!({"ip": ip.to_string()}))
            .collect();
        let ready = if ready { "True" } else { "False" };
        let status = serde_json::json!({"status": {
            "phase": "Running",
            "podIP": first.to_string(),
            "podIPs": pod_ips,
            "conditions": [
                {"type": "Ready", "status": ready},
                {"type": "ContainersReady", "status": ready},
            ],
        }});
        self.patch_status(&["pod", "-n", namespace, name], &status)
    }

    /// Merges `status` into an object's status subresource, as its
    /// controller would; `object` names it (`["pod", "-n", ns, name]`).
    fn patch_status(&self, object: &[&str], status: &serde_json::Value) -> Result<()> {
        let status = status.to_string();
        let mut args = vec!["patch"];
        args.extend_from_slice(object);
        args.extend(["--subresource=status", "--type=merge", "-p", &status]);
        self.kubectl(&args).map(drop)
    }

    /// Kills kube-apiserver, keeps it away for `down`, then starts it again with the same
    /// command line; returns once it answers `/readyz`.
    pub fn restart_apiserver(&self, down: Duration) -> Result<()> {
        let pid = self.pid("kube-apiserver")?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))?;
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        // Killed, as by a crash or a node failure: no goodbye to clients.
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        // Gone, or a zombie (the script that started it has exited; its
        // reaper may be this test's runner, which reaps when it pleases).
        let gone = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
                stat.rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            })
        };
        if !crate::wait::eventually(Duration::from_secs(15), Duration::from_millis(50), gone) {
            bail!("kube-apiserver (pid {pid}) did not stop");
        }
        std::thread::sleep(down);
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("kube-apiserver.log"))?;
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("restarting kube-apiserver")?;
        let pids = std::fs::read_to_string(self.dir.join("pids"))?
            .lines()
            .map(|line| match line.split_once(' ') {
                Some(("kube-apiserver", _)) => format!("kube-apiserver {}", child.id()),
                _ => line.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(self.dir.join("pids"), pids + "\n")?;
        let ready = || self.kubectl(&["get", "--raw", "/readyz"]).is_ok();
        if !crate::wait::eventually(Duration::from_secs(60), Duration::from_millis(200), ready) {
            bail!(
                "kube-apiserver did not come back; see {}",
                self.dir.display()
            );
        }
        Ok(())
    }

    fn pid(&self, name: &str) -> Result<i32> {
        let pids = std::fs::read_to_string(self.dir.join("pids"))?;
        pids.lines()
            .find_map(|line| {
                let (n, pid) = line.split_once(' ')?;
                (n == name).then(|| pid.trim().parse().ok())?
            })
            .with_context(|| format!("no {name} in {}", self.dir.join("pids").display()))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
        if std::thread::panicking() {
            eprintln!(
                "Kubernetes control plane logs kept in {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A Pod object for node `node`: labels `key=value`, named container ports
/// `name=port` (TCP).
pub fn pod_object(
    namespace: &str,
    name: &str,
    node: &str,
    labels: &[&str],
    ports: &[&str],
) -> Result<String> {
    let labels = labels
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), serde_json::Value::from(v))
        })
        .collect::<serde_json::Map<_, _>>();
    let ports = ports
        .iter()
        .map(|p| {
            let (port_name, number) = p
                .split_once('=')
                .with_context(|| format!("port {p:?} is not name=number"))?;
            let number: u16 = number.parse().with_context(|| format!("port {p:?}"))?;
            Ok(serde_json::json!({"name": port_name, "containerPort": number, "protocol": "TCP"}))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name, "labels": labels},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "main", "image": "busybox", "ports": ports}],
        },
    })
    .to_string())
}
