//! Restart without disruption: the agent is killed with SIGKILL and started
//! again while traffic flows. Established connections keep flowing, denied
//! traffic never passes, allowed traffic never drops, and endpoints,
//! identities and policy come back unchanged.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use testbed::{Agent, AgentOptions, Pod};

const POLICY: &str = r#"
- endpointSelector: {matchLabels: {app: backend}}
  labels: ["k8s:policy=restart-test"]
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#;

/// Echoes every connection's bytes back, in the pod's namespace.
fn serve_echo(pod: &Pod, port: u16) -> TcpListener {
    pod.namespace()
        .run(move || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap())
        .unwrap()
}

fn echo_forever(listener: TcpListener) {
    thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// (link id, program id) of each of the endpoint's pinned tc links.
fn attached_programs(agent: &Agent, endpoint: u16) -> Vec<(String, String)> {
    let dir = agent
        .paths()
        .bpf_root
        .join("endpoints")
        .join(endpoint.to_string());
    let mut links: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    links.sort();
    links
        .iter()
        .map(|pin| {
            let out = std::process::Command::new("bpftool")
                .args(["-j", "link", "show", "pinned"])
                .arg(pin)
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            (v["id"].to_string(), v["prog_id"].to_string())
        })
        .collect()
}

fn connect_from(pod: &Pod, ip: Ipv4Addr, port: u16, timeout: Duration) -> Option<TcpStream> {
    pod.namespace()
        .run(move || TcpStream::connect_timeout(&(ip, port).into(), timeout).ok())
        .unwrap()
}

/// What each traffic probe saw while it ran.
#[derive(Default)]
struct Tally {
    attempts: AtomicUsize,
    failures: AtomicUsize,
}

#[test]
fn agent_crash_and_restart_disrupts_nothing() {
    let mut agent = Agent::start_with(AgentOptions::default().with_unique_range()).unwrap();
    let frontend = Pod::create(&agent, "frontend", &["k8s:app=frontend"]).unwrap();
    let backend = Pod::create(&agent, "backend", &["k8s:app=backend"]).unwrap();
    let intruder = Pod::create(&agent, "intruder", &["k8s:app=intruder"]).unwrap();
    echo_forever(serve_echo(&backend, 80));

    let policy = agent.temp_dir().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    agent
        .cli_ok(&["policy", "import", policy.to_str().unwrap()])
        .unwrap();
    let revision = agent.client().policy_get().unwrap().revision;
    backend
        .wait_for_policy_revision(&agent, revision, Duration::from_secs(5))
        .unwrap();
    let before_endpoints = agent.client().endpoint_list().unwrap();
    let before_identities = agent.client().identity_list().unwrap();
    let before_programs = attached_programs(&agent, backend.endpoint_id());
    assert_eq!(
        before_programs.len(),
        2,
        "from- and to-container links are pinned"
    );

    // A long-lived connection exchanging a message every 5 ms.
    let mut conn = connect_from(&frontend, backend.ip(), 80, Duration::from_secs(2))
        .expect("frontend reaches backend:80");
    conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stream = Arc::new(Tally::default());
    let streamer = {
        let (stop, tally) = (stop.clone(), stream.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 8];
            while !stop.load(Ordering::Relaxed) {
                tally.attempts.fetch_add(1, Ordering::Relaxed);
                let ok = conn.write_all(b"restart!").is_ok()
                    && conn.read_exact(&mut buf).is_ok()
                    && &buf == b"restart!";
                if !ok {
                    tally.failures.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // New connections: the frontend's must always succeed, the intruder's never.
    let probe = |pod: &Pod, tally: Arc<Tally>, expect_success: bool| {
        let (stop, ns, ip) = (stop.clone(), pod.namespace().path(), backend.ip());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let connected = testbed::netns::run_in(&ns, move || {
                    TcpStream::connect_timeout(&(ip, 80).into(), Duration::from_millis(150)).is_ok()
                })
                .unwrap();
                tally.attempts.fetch_add(1, Ordering::Relaxed);
                if connected != expect_success {
                    tally.failures.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let allowed = Arc::new(Tally::default());
    let denied = Arc::new(Tally::default());
    let probes = [
        probe(&frontend, allowed.clone(), true),
        probe(&intruder, denied.clone(), false),
    ];

    thread::sleep(Duration::from_millis(500));
    agent.kill();
    thread::sleep(Duration::from_millis(800)); // the node runs without its agent
    let restarted = Instant::now();
    agent.start_again().unwrap();
    let took = restarted.elapsed();
    thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::Relaxed);
    streamer.join().unwrap();
    for p in probes {
        p.join().unwrap();
    }

    let report = |name: &str, t: &Tally| {
        let (a, f) = (
            t.attempts.load(Ordering::Relaxed),
            t.failures.load(Ordering::Relaxed),
        );
        assert!(a >= 8, "{name}: too few attempts ({a}) to prove anything");
        assert_eq!(
            f, 0,
            "{name}: {f} of {a} attempts went wrong across the restart"
        );
    };
    report("established connection", &stream);
    report("frontend new connections (allowed)", &allowed);
    report("intruder new connections (denied)", &denied);
    eprintln!("agent restarted in {took:?}");

    // State came back from the state dir and pinned maps.
    assert_eq!(agent.client().endpoint_list().unwrap(), before_endpoints);
    assert_eq!(agent.client().identity_list().unwrap(), before_identities);
    assert_eq!(agent.client().policy_get().unwrap().revision, revision);

    // The restarted agent swapped its programs into the same links.
    let after_programs = attached_programs(&agent, backend.endpoint_id());
    for ((link_before, prog_before), (link_after, prog_after)) in
        before_programs.iter().zip(&after_programs)
    {
        assert_eq!(link_before, link_after, "the same tc link stays attached");
        assert_ne!(
            prog_before, prog_after,
            "a new program was swapped in atomically"
        );
    }

    // And the restarted agent still governs the datapath.
    agent.cli_ok(&["policy", "delete", "--all"]).unwrap();
    let id = backend.endpoint_id().to_string();
    assert!(
        testbed::eventually(Duration::from_secs(2), Duration::from_millis(50), || {
            connect_from(&intruder, backend.ip(), 80, Duration::from_millis(300)).is_some()
        }),
        "policy deletion after the restart is enforced; backend policy map:\n{}\nendpoints:\n{}\nct:\n{}\nlog:\n{}",
        agent.cli_ok(&["bpf", "policy", "get", &id]).unwrap(),
        agent.cli_ok(&["endpoint", "list"]).unwrap(),
        agent.cli_ok(&["bpf", "ct", "list", "global"]).unwrap(),
        agent.log_tail()
    );
}
