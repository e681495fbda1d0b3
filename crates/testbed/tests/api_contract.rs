//! The agent keeps the contract `api/openapi.yaml` states, checked by
//! Schemathesis against a real agent: every check (server errors, status
//! codes, content types, response schemas, schema-valid requests accepted,
//! schema-violating ones rejected, allowed methods, ...), in every phase
//! (examples, coverage, fuzzing, stateful), with a bounded number of
//! examples per operation so the run stays within a couple of minutes.
//! `api/schemathesis.toml` lists the few operations whose acceptance also
//! depends on the node (an interface that must exist) or on fields taken
//! together, as their descriptions in the spec say.
//!
//! Schemathesis speaks TCP; the agent listens on a unix socket: a socat
//! bridge joins them inside a network namespace of the test's own, so the
//! port is never anyone else's. `GET /monitor` is left out: it is a stream
//! that never ends, which Schemathesis would wait on until its timeout.
//!
//! Needs root, socat and schemathesis (`make setup` installs both).
//! `SCHEMATHESIS_SEED=N` reruns with another seed; `SCHEMATHESIS_EXAMPLES=N`
//! changes the examples per operation.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testbed::{eventually, runtime, unique, Agent, AgentOptions, BackgroundProcess, NetNs};

const BRIDGE_PORT: u16 = 8080;
/// `POST /ipam` is called a few hundred times: a /16 (no other test's)
/// never runs dry, where a full pool would answer 500.
const AGENT_RANGE: &str = "10.188.0.0/16";
const DEFAULT_SEED: &str = "1";
const DEFAULT_EXAMPLES: &str = "100";
/// A run takes about 45 s; past this something hangs.
const RUN_TIMEOUT: Duration = Duration::from_secs(160);

#[test]
fn schemathesis_finds_no_difference_between_spec_and_agent() {
    runtime::require_programs(&["socat", "schemathesis"], "socat (and: make setup)").unwrap();
    let agent = Agent::start_with(AgentOptions {
        ipv4_range: Some(AGENT_RANGE.into()),
        ..AgentOptions::default()
    })
    .unwrap();
    let ns = NetNs::create(&format!("cst-{}", unique::next_tag())).unwrap();
    ns.exec_ok(&["ip", "link", "set", "lo", "up"]).unwrap();

    let listen = format!("TCP-LISTEN:{BRIDGE_PORT},bind=127.0.0.1,fork,reuseaddr");
    let connect = format!("UNIX-CONNECT:{}", agent.socket().display());
    let _bridge = BackgroundProcess::spawn(
        &ns,
        &["socat", &listen, &connect],
        &agent.temp_dir().join("socat.log"),
    )
    .unwrap();
    let listening = eventually(Duration::from_secs(5), Duration::from_millis(50), || {
        ns.run(|| TcpStream::connect(("127.0.0.1", BRIDGE_PORT)).is_ok())
            .unwrap()
    });
    assert!(
        listening,
        "the socat bridge does not listen on port {BRIDGE_PORT}"
    );

    let api_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../api");
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or(DEFAULT_SEED.into());
    let examples = std::env::var("SCHEMATHESIS_EXAMPLES").unwrap_or(DEFAULT_EXAMPLES.into());
    let config = api_dir.join("schemathesis.toml");
    let spec = api_dir.join("openapi.yaml");
    let url = format!("http://127.0.0.1:{BRIDGE_PORT}/v1");
    let args = [
        "--config-file",
        config.to_str().unwrap(),
        "run",
        spec.to_str().unwrap(),
        "--url",
        &url,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        &examples,
        "--seed",
        &seed,
        "--exclude-path",
        "/monitor",
        "--request-timeout",
        "10",
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--no-color",
    ];
    let started = Instant::now();
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .arg("--")
        .arg("schemathesis")
        .args(args)
        // Anything it writes (reports, caches) goes with the agent's files.
        .current_dir(agent.temp_dir())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(agent.temp_dir().join("schemathesis.log")).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start schemathesis");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output =
        std::fs::read_to_string(agent.temp_dir().join("schemathesis.log")).unwrap_or_default();
    println!("{output}");
    match status {
        Some(s) if s.success() => {
            println!("schemathesis passed in {:?}", started.elapsed())
        }
        Some(s) => panic!(
            "schemathesis found differences between api/openapi.yaml and the agent ({s}); \
             its report is above. Rerun: schemathesis {}",
            args.join(" ")
        ),
        None => panic!("schemathesis did not finish within {RUN_TIMEOUT:?}; its output is above"),
    }
}
