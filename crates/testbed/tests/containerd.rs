//! Acceptance of issue 4 for containerd: its CRI plugin, driven by a CRI
//! gRPC client here, creates pod sandboxes through cilium-cni; the
//! endpoints carry the pods' Kubernetes namespace labels; a policy by
//! namespace is enforced between sandboxes; stopping and removing the
//! sandboxes (CRI calls DEL twice, the second time without a namespace)
//! leaves no endpoint, IP, interface or namespace behind.
//!
//! The pause container has no tools: traffic is made from the host side by
//! entering the sandboxes' network namespaces (the path cilium-cni got in
//! `CNI_NETNS`, as the endpoint records it).
//!
//! Needs root, `containerd runc containernetworking-plugins busybox-static`
//! (the Makefile's setup installs them), and `cilium-agent`, `cilium` and
//! `cilium-cni` built.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    PodSandboxConfig, PodSandboxMetadata, PodSandboxStatusRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StopPodSandboxRequest,
};
use testbed::netns::run_in;
use testbed::runtime::Containerd;
use testbed::{eventually, unique, Agent, AgentOptions, Monitor};
use tonic::transport::{Channel, Endpoint, Uri};

const PORT: u16 = 8080;
const GREETING: &str = "hello from prod/server";
const REALIZE_TIMEOUT: Duration = Duration::from_secs(10);
const PASS_TIMEOUT: Duration = Duration::from_secs(10);

/// Pods in `prod` accept connections from `prod` only: the namespace
/// selector `kubernetes.io/metadata.name: prod` of a NetworkPolicy, in
/// Cilium's rule format.
const PROD_ONLY: &str = r#"[{
  "endpointSelector": {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "prod"}},
  "ingress": [{
    "fromEndpoints": [{"matchLabels": {
      "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": "prod"
    }}]
  }]
}]"#;

/// A CRI client on containerd's socket, blocking on its own runtime.
struct Cri {
    runtime: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
}

impl Cri {
    fn connect(socket: &Path) -> Result<Cri> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let path = socket.to_path_buf();
        let channel = runtime.block_on(async move {
            Endpoint::try_from("http://[::]:50051")?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                }))
                .await
        })?;
        Ok(Cri {
            runtime,
            client: RuntimeServiceClient::new(channel),
        })
    }

    fn run_pod(&mut self, namespace: &str, name: &str, uid: &str) -> Result<String> {
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_string(),
                uid: uid.to_string(),
                namespace: namespace.to_string(),
                attempt: 0,
            }),
            hostname: name.to_string(),
            labels: HashMap::from([("app".to_string(), name.to_string())]),
            ..Default::default()
        };
        let request = RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        let client = &mut self.client;
        let answer = self
            .runtime
            .block_on(client.run_pod_sandbox(request))
            .with_context(|| format!("RunPodSandbox {namespace}/{name}"))?;
        Ok(answer.into_inner().pod_sandbox_id)
    }

    /// The sandbox's IP as CRI reports it (from the CNI result).
    fn pod_ip(&mut self, id: &str) -> Result<String> {
        let client = &mut self.client;
        let status = self
            .runtime
            .block_on(client.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.to_string(),
                verbose: false,
            }))
            .with_context(|| format!("PodSandboxStatus {id}"))?
            .into_inner();
        Ok(status
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default())
    }

    fn stop_and_remove(&mut self, id: &str) -> Result<()> {
        let client = &mut self.client;
        self.runtime
            .block_on(client.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            }))
            .with_context(|| format!("StopPodSandbox {id}"))?;
        self.runtime
            .block_on(client.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            }))
            .with_context(|| format!("RemovePodSandbox {id}"))?;
        Ok(())
    }
}

struct Pod {
    label: String,
    sandbox_id: String,
    endpoint_id: u16,
    ip: Ipv4Addr,
    netns: PathBuf,
    host_ifname: String,
}

/// Fields drop in order: the CRI client, then containerd (stopping it
/// leaves sandboxes' DEL undone only if the test failed half-way; their
/// endpoints go with the agent), then the agent.
struct Scene {
    cri: Cri,
    containerd: Containerd,
    agent: Agent,
    pods: Vec<String>,
}

impl Scene {
    fn start() -> Result<Scene> {
        let agent = Agent::start_with(AgentOptions::default().with_unique_range())?;
        let containerd = Containerd::start(agent.socket())?;
        let cri = Cri::connect(containerd.socket())?;
        Ok(Scene {
            cri,
            containerd,
            agent,
            pods: Vec::new(),
        })
    }

    fn run(&mut self, namespace: &str, name: &str) -> Result<Pod> {
        let uid = format!("uid-{}", unique::next_tag());
        let label = format!("{namespace}/{name}");
        let sandbox_id = self
            .cri
            .run_pod(namespace, name, &uid)
            .with_context(|| format!("containerd log:\n{}", self.containerd.log_tail()))?;
        self.pods.push(sandbox_id.clone());
        let ep = self
            .agent
            .client()
            .endpoint_get(&format!("container-id:{sandbox_id}"))
            .with_context(|| format!("{label}: no endpoint for sandbox {sandbox_id}"))?;
        let wanted = format!("k8s:io.kubernetes.pod.namespace={namespace}");
        ensure!(
            ep.status.identity.labels.contains(&wanted),
            "{label}: endpoint {} has labels {:?}, expected {wanted}",
            ep.id,
            ep.status.identity.labels
        );
        let ip: Ipv4Addr = ep
            .status
            .networking
            .addressing
            .iter()
            .find_map(|a| a.ipv4.as_deref()?.parse().ok())
            .with_context(|| format!("{label}: endpoint {} has no IPv4", ep.id))?;
        let cri_ip = self.cri.pod_ip(&sandbox_id)?;
        ensure!(
            cri_ip == ip.to_string(),
            "{label}: CRI reports IP {cri_ip:?}, the endpoint {ip}"
        );
        Ok(Pod {
            label,
            sandbox_id,
            endpoint_id: ep.id,
            ip,
            netns: PathBuf::from(&ep.status.networking.netns),
            host_ifname: ep.status.networking.interface_name.clone(),
        })
    }
}

/// Accepts on `0.0.0.0:PORT` inside a sandbox's namespace, answering each
/// connection with the greeting. Stops on drop.
struct Server {
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(pod: &Pod) -> Result<Server> {
        let listener = run_in(&pod.netns, || {
            TcpListener::bind((Ipv4Addr::UNSPECIFIED, PORT))
        })??;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.write_all(GREETING.as_bytes());
                        let _ = conn.shutdown(Shutdown::Write);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Server { stop })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One connection from inside `client`'s namespace; true if the greeting
/// came back.
fn fetch(client: &Pod, server: &Pod) -> bool {
    let addr = SocketAddr::from((server.ip, PORT));
    run_in(&client.netns, move || -> std::io::Result<String> {
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        conn.set_read_timeout(Some(Duration::from_secs(1)))?;
        let mut text = String::new();
        conn.read_to_string(&mut text)?;
        Ok(text)
    })
    .is_ok_and(|r| r.is_ok_and(|text| text.contains(GREETING)))
}

fn reaches(client: &Pod, server: &Pod) -> bool {
    eventually(PASS_TIMEOUT, Duration::from_millis(100), || {
        fetch(client, server)
    })
}

#[test]
fn cri_sandboxes_get_namespace_labels_obey_namespace_policy_and_clean_up() -> Result<()> {
    let mut scene = Scene::start()?;
    let server = scene.run("prod", "server")?;
    let insider = scene.run("prod", "client")?;
    let outsider = scene.run("dev", "client")?;
    let _serving = Server::start(&server)?;

    ensure!(
        reaches(&insider, &server) && reaches(&outsider, &server),
        "without a policy both clients must reach {} at {}",
        server.label,
        server.ip
    );

    let mut drops = Monitor::start(&scene.agent, &["drop"])?;
    let revision = scene.agent.client().policy_put(PROD_ONLY, false)?.revision;
    let client = scene.agent.client();
    ensure!(
        eventually(REALIZE_TIMEOUT, Duration::from_millis(20), || {
            client
                .endpoint_get(&server.endpoint_id.to_string())
                .is_ok_and(|ep| ep.status.policy.realized.policy_revision >= revision)
        }),
        "{} did not realize policy revision {revision}",
        server.label
    );

    ensure!(
        reaches(&insider, &server),
        "{} -> {} must pass: same namespace",
        insider.label,
        server.label
    );
    ensure!(
        (0..3).all(|_| !fetch(&outsider, &server)),
        "{} -> {} must be dropped: other namespace",
        outsider.label,
        server.label
    );
    let denial = drops.wait_for(
        |ev| {
            ev.reason_text == "Policy denied"
                && ev.endpoint == server.endpoint_id
                && ev.src_ip == outsider.ip.to_string()
        },
        Duration::from_secs(3),
    );
    ensure!(
        denial.is_some(),
        "no `Policy denied` drop at {} from {}; drops seen: {:#?}",
        server.label,
        outsider.ip,
        drops.seen()
    );

    drop(_serving);
    let pods = [&server, &insider, &outsider];
    for pod in pods {
        scene.cri.stop_and_remove(&pod.sandbox_id)?;
    }
    scene.pods.clear();

    let endpoints = client.endpoint_list()?;
    ensure!(
        endpoints.is_empty(),
        "endpoints left after RemovePodSandbox: {:?}",
        endpoints.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    let ipam = client.healthz()?.ipam;
    ensure!(ipam.ipv4.is_empty(), "IPs still allocated: {:?}", ipam.ipv4);
    for pod in pods {
        ensure!(
            testbed::cmd::ip(&["link", "show", "dev", &pod.host_ifname]).is_err(),
            "{}: host veth {} is still there",
            pod.label,
            pod.host_ifname
        );
        ensure!(
            !pod.netns.exists(),
            "{}: network namespace {} is still there",
            pod.label,
            pod.netns.display()
        );
    }
    Ok(())
}

impl Drop for Scene {
    fn drop(&mut self) {
        // A failed test: still give each sandbox its DEL while the agent
        // runs.
        for id in std::mem::take(&mut self.pods) {
            let _ = self.cri.stop_and_remove(&id);
        }
    }
}
