//! Kafka through the real proxy process with real librdkafka clients (kcat)
//! and a librdkafka mock cluster, on the transparent path.
//!
//! Kafka clients reconnect to the broker address the cluster advertises, so
//! a fixed-upstream listener would be bypassed. Each test therefore runs in
//! its own network namespace where a TPROXY rule plays the datapath's part
//! (`bpf_sk_assign`): connections to the broker land on the proxy's
//! `IP_TRANSPARENT` listener with the broker address as their local address,
//! and the proxy's own upstream connections (SO_MARK 0x77) pass untouched.
//! Needs root, iptables with TPROXY, unshare/nsenter and kcat.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Output, Stdio};

use common::netns::{command_in, Netns};
use common::{Process, Proxy};
use serde_json::{json, Value};

const PROXY_PORT: u16 = 15001;
const PROXY_MARK: u32 = 0x77;

/// kcat run inside a test namespace.
trait Kcat {
    fn kcat(&self, args: &[&str], input: &str) -> Output;
}

impl Kcat for Netns {
    /// Runs kcat (with a timeout) feeding `input` on stdin.
    fn kcat(&self, args: &[&str], input: &str) -> Output {
        let mut all = vec!["timeout", "20", "kcat"];
        all.extend_from_slice(args);
        let mut child = self
            .command(&all)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kcat installed (apt-get install kcat)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

/// A librdkafka mock cluster (one broker) hosted by an idle kcat producer,
/// in `netns` or else in the test's own namespace.
fn mock_cluster(netns: Option<&Netns>) -> (Process, u16) {
    let args = [
        "kcat",
        "-X",
        "test.mock.num.brokers=1",
        "-b",
        "unused:9092",
        "-P",
        "-t",
        "seed",
    ];
    let mut command = command_in(netns, &args);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat installed (apt-get install kcat)");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    let port = loop {
        let line = lines.next().expect("mock cluster address").unwrap();
        if let Some((_, address)) = line.split_once("replaced with ") {
            break address.trim().rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    // Keep draining so kcat never blocks on (or dies of) a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Process(child), port)
}

struct KafkaSetup {
    netns: Netns,
    _mock: Process,
    broker: String,
    proxy: Proxy,
}

fn setup(rules: Value) -> KafkaSetup {
    let netns = Netns::new();
    let (mock, broker_port) = mock_cluster(Some(&netns));
    // The datapath's job, done by TPROXY: steer broker-bound connections to
    // the proxy's transparent listener, except the proxy's own (marked) ones.
    netns.route_to_proxy_locally();
    let port = broker_port.to_string();
    let mark = format!("{PROXY_MARK:#x}");
    netns.must(&[
        "iptables",
        "-t",
        "mangle",
        "-A",
        "PREROUTING",
        "-p",
        "tcp",
        "-d",
        "127.0.0.1",
        "--dport",
        &port,
        "-m",
        "mark",
        "!",
        "--mark",
        &mark,
        "-j",
        "TPROXY",
        "--on-port",
        &PROXY_PORT.to_string(),
        "--tproxy-mark",
        "0x200/0xf00",
    ]);
    let prefix = netns.prefix();
    let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let mut proxy = Proxy::start_with(&prefix);
    let reply = proxy.control.command(json!({
        "op": "sync",
        "ipcache": [],
        "redirects": [{
            "proxy_port": PROXY_PORT, "parser": "kafka", "direction": "ingress", "endpoint_id": 9,
            "upstream_mark": PROXY_MARK,
            "policies": [{"identity": 0, "rules": {"kafka": rules}}]
        }]
    }));
    assert_eq!(reply["type"], "ack", "{reply}");
    KafkaSetup {
        netns,
        _mock: mock,
        broker: format!("127.0.0.1:{broker_port}"),
        proxy,
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn produce_allowed_topic_succeeds_and_denied_topic_gets_authorization_error() {
    let mut k = setup(json!([
        {"role": "produce", "topic": "allowed"},
        {"role": "consume", "topic": "allowed"}
    ]));
    let produced = k
        .netns
        .kcat(&["-b", &k.broker, "-P", "-t", "allowed"], "message-1\n");
    assert!(produced.status.success(), "{}", text(&produced));
    let consumed = k.netns.kcat(
        &[
            "-b",
            &k.broker,
            "-C",
            "-t",
            "allowed",
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        "",
    );
    assert!(consumed.status.success(), "{}", text(&consumed));
    assert!(
        String::from_utf8_lossy(&consumed.stdout).contains("message-1"),
        "{}",
        text(&consumed)
    );

    let denied = k
        .netns
        .kcat(&["-b", &k.broker, "-P", "-t", "denied"], "message-2\n");
    assert!(!denied.status.success());
    assert!(
        text(&denied)
            .to_lowercase()
            .contains("topic authorization failed"),
        "{}",
        text(&denied)
    );

    let event = k.proxy.control.wait_event(|e| e["verdict"] == "Denied");
    assert_eq!(event["protocol"], "kafka");
    assert_eq!(event["topics"], json!(["denied"]));
    assert_eq!(event["status"], 29);
    let produce = k
        .proxy
        .control
        .wait_event(|e| e["verdict"] == "Forwarded" && e["method"] == "produce");
    assert_eq!(produce["topics"], json!(["allowed"]));
    assert_eq!(produce["endpoint_id"], 9);
}

#[test]
fn produce_only_role_cannot_consume() {
    let k = setup(json!([{"role": "produce", "topic": "orders"}]));
    let produced = k
        .netns
        .kcat(&["-b", &k.broker, "-P", "-t", "orders"], "order-1\n");
    assert!(produced.status.success(), "{}", text(&produced));
    let consumed = k.netns.kcat(
        &[
            "-b",
            &k.broker,
            "-C",
            "-t",
            "orders",
            "-o",
            "beginning",
            "-e",
        ],
        "",
    );
    let all = text(&consumed);
    assert!(!all.contains("order-1"), "{all}");
    assert!(all.to_lowercase().contains("authorization failed"), "{all}");
}

/// An ApiVersions v0 request frame with correlation id `id`.
fn api_versions(id: i32) -> Vec<u8> {
    let mut payload = vec![0, 18, 0, 0];
    payload.extend_from_slice(&id.to_be_bytes());
    payload.extend_from_slice(&[0, 4]);
    payload.extend_from_slice(b"test");
    [(payload.len() as u32).to_be_bytes().to_vec(), payload].concat()
}

/// Sends ApiVersions and returns (correlation id, error code) of the answer.
fn ask_versions(stream: &mut std::net::TcpStream, id: i32) -> (i32, i16) {
    use std::io::Read;
    stream.write_all(&api_versions(id)).unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).unwrap();
    (
        i32::from_be_bytes(body[..4].try_into().unwrap()),
        i16::from_be_bytes(body[4..6].try_into().unwrap()),
    )
}

#[test]
fn malformed_frames_close_the_connection_and_others_are_served() {
    use std::io::Read;
    use std::net::TcpStream;
    use std::time::Duration;

    let (_mock, broker_port) = mock_cluster(None);
    let mut proxy = Proxy::start();
    let port = common::free_port();
    proxy.fixed_redirect(
        port,
        "kafka",
        &format!("127.0.0.1:{broker_port}"),
        json!([{"identity": 0, "rules": {"kafka": [{"role": "produce", "topic": "t"}]}}]),
    );
    let mut steady = TcpStream::connect(("127.0.0.1", port)).unwrap();
    steady
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(ask_versions(&mut steady, 1), (1, 0));

    let mut huge_array = vec![
        0, 0, 0, 7, 0, 0, 0, 2, 0, 1, b'x', 0xff, 0xff, 0, 1, 0, 0, 0, 1,
    ];
    huge_array.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
    let frames: Vec<Vec<u8>> = vec![
        (-5i32).to_be_bytes().to_vec(),
        (200u32 << 20).to_be_bytes().to_vec(),
        [
            &10u32.to_be_bytes()[..],
            &[0xff, 0xff, 0, 0, 0, 0, 0, 1, 0, 0],
        ]
        .concat(),
        [&(huge_array.len() as u32).to_be_bytes()[..], &huge_array].concat(),
        [
            &12u32.to_be_bytes()[..],
            &[0, 18, 0, 0, 0, 0, 0, 1, 0x7f, 0xff, 0, 0],
        ]
        .concat(),
    ];
    for frame in &frames {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(frame).unwrap();
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest);
        assert!(
            read.is_ok() && rest.is_empty(),
            "not closed cleanly after {frame:?}: {read:?} {rest:?}"
        );
    }
    assert_eq!(ask_versions(&mut steady, 2), (2, 0));
    let mut fresh = TcpStream::connect(("127.0.0.1", port)).unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(ask_versions(&mut fresh, 3), (3, 0));
    let error = proxy.control.wait_event(|e| e["verdict"] == "Error");
    assert_eq!(error["protocol"], "kafka");
}
