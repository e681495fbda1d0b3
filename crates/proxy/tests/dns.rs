//! DNS through the real proxy process, against a real dnsmasq, asked by a
//! real `dig` over UDP and TCP. The redirect's policy allows `*.allowed.test`;
//! dnsmasq knows names under both `allowed.test` and `denied.test`, so a
//! REFUSED (or NXDOMAIN) for a denied name can only come from the proxy.
//!
//! Most tests use the fixed-upstream test mode (the proxy listens on
//! 127.0.0.1 and sends every query to dnsmasq). The last one runs the
//! transparent path in a private network namespace, TPROXY playing the
//! datapath: dig asks dnsmasq's own address and must get its answers from
//! that address (dig ignores answers from anywhere else). Needs dnsmasq,
//! dig, and for the last test root, iptables with TPROXY, unshare, nsenter.

mod common;

use std::net::UdpSocket;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::netns::{command_in, Netns};
use common::{free_port, wait_for_port, Process, Proxy};
use proxy::dns::wire::{build_query, TYPE_A};
use serde_json::{json, Value};

/// dnsmasq with the test's names, killed on drop.
struct Dnsmasq {
    _process: Process,
    port: u16,
}

impl Dnsmasq {
    fn start(netns: Option<&Netns>, port: u16) -> Self {
        let port_arg = format!("--port={port}");
        let args = [
            "dnsmasq",
            "--no-daemon",
            &port_arg,
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--local-ttl=300",
            "--host-record=www.allowed.test,192.0.2.1",
            "--host-record=multi.allowed.test,192.0.2.11",
            "--host-record=multi.allowed.test,192.0.2.12",
            "--host-record=multi.allowed.test,192.0.2.13",
            "--host-record=target.allowed.test,192.0.2.30",
            "--cname=alias.allowed.test,mid.allowed.test,60",
            "--cname=mid.allowed.test,target.allowed.test,120",
            "--address=/gone.allowed.test/",
            "--host-record=www.denied.test,192.0.2.66",
        ];
        let mut command = command_in(netns, &args);
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq installed (apt-get install dnsmasq-base)");
        let dnsmasq = Dnsmasq {
            _process: Process(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while dig_in(netns, port, &["www.allowed.test"]).status != "NOERROR" {
            assert!(Instant::now() < deadline, "dnsmasq never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
        dnsmasq
    }
}

/// What dig printed: the status and the answer records.
#[derive(Debug, Clone, Default)]
struct Dig {
    status: String,
    /// (name, ttl, type, data), every query's answers in order.
    answers: Vec<(String, u32, String, String)>,
}

impl Dig {
    fn data(&self, rtype: &str) -> Vec<String> {
        let mut data: Vec<String> = self
            .answers
            .iter()
            .filter(|a| a.2 == rtype)
            .map(|a| a.3.clone())
            .collect();
        data.sort();
        data
    }
}

fn dig_in(netns: Option<&Netns>, port: u16, args: &[&str]) -> Dig {
    let port = port.to_string();
    let mut all = vec![
        "dig",
        "@127.0.0.1",
        "-p",
        &port,
        "+tries=1",
        "+time=5",
        "+noall",
        "+comments",
        "+answer",
    ];
    all.extend_from_slice(args);
    let output = command_in(netns, &all)
        .output()
        .expect("dig installed (apt-get install bind9-dnsutils)");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut dig = Dig::default();
    for line in text.lines() {
        if let Some((_, rest)) = line.split_once("status: ") {
            dig.status = rest.split(',').next().unwrap_or("").to_string();
        } else if !line.starts_with(';') && !line.trim().is_empty() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() >= 5 {
                dig.answers.push((
                    fields[0].to_string(),
                    fields[1].parse().unwrap_or(0),
                    fields[3].to_string(),
                    fields[4].to_string(),
                ));
            }
        }
    }
    dig
}

fn dig(port: u16, args: &[&str]) -> Dig {
    dig_in(None, port, args)
}

const RULES: &str = r#"[{"identity": 0, "rules": {"dns": [{"matchPattern": "*.allowed.test"}]}}]"#;

struct Setup {
    _dnsmasq: Dnsmasq,
    proxy: Proxy,
    port: u16,
}

/// dnsmasq, and the proxy (started with `args`) with a test-mode DNS
/// redirect in front of it.
fn setup(args: &[&str]) -> Setup {
    let dnsmasq = Dnsmasq::start(None, free_port());
    let mut proxy = Proxy::start_with_args(&[], args);
    let port = free_port();
    let reply = proxy.control.command(json!({
        "op": "upsert_redirect",
        "redirect": {
            "proxy_port": port,
            "parser": "dns",
            "direction": "egress",
            "endpoint_id": 42,
            "policies": serde_json::from_str::<Value>(RULES).unwrap(),
            "fixed_upstream": format!("127.0.0.1:{}", dnsmasq.port),
        }
    }));
    assert_eq!(reply["type"], "ack", "{reply}");
    wait_for_port(port);
    Setup {
        _dnsmasq: dnsmasq,
        proxy,
        port,
    }
}

fn status(proxy: &mut Proxy) -> Value {
    let reply = proxy.control.command(json!({"op": "status"}));
    reply["status"].clone()
}

fn dns_count(status: &Value, outcome: &str) -> u64 {
    status["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["protocol"] == "dns" && c["outcome"] == outcome)
        .map(|c| c["count"].as_u64().unwrap())
        .sum()
}

#[test]
fn allowed_names_are_answered_and_denied_ones_refused_over_udp_and_tcp() {
    // Answers are released at once: the go-ahead has its own test.
    let mut s = setup(&["--dns-response-max-delay", "0s"]);
    for transport in ["+notcp", "+tcp"] {
        let allowed = dig(s.port, &[transport, "www.allowed.test"]);
        assert_eq!(allowed.status, "NOERROR", "{transport}");
        assert_eq!(allowed.data("A"), ["192.0.2.1"], "{transport}");
        let denied = dig(s.port, &[transport, "www.denied.test"]);
        assert_eq!(denied.status, "REFUSED", "{transport}");
        assert!(denied.answers.is_empty(), "{transport}: {denied:?}");
        let multi = dig(s.port, &[transport, "multi.allowed.test"]);
        assert_eq!(
            multi.data("A"),
            ["192.0.2.11", "192.0.2.12", "192.0.2.13"],
            "{transport}"
        );
        let chain = dig(s.port, &[transport, "alias.allowed.test"]);
        assert_eq!(
            chain.data("CNAME"),
            ["mid.allowed.test.", "target.allowed.test."]
        );
        assert_eq!(chain.data("A"), ["192.0.2.30"], "{transport}");
        // The server's own NXDOMAIN passes through.
        assert_eq!(
            dig(s.port, &[transport, "gone.allowed.test"]).status,
            "NXDOMAIN"
        );
    }
    // Several queries on one TCP connection, a denied one between.
    let several = dig(
        s.port,
        &[
            "+tcp",
            "+keepopen",
            "www.allowed.test",
            "www.denied.test",
            "multi.allowed.test",
        ],
    );
    assert_eq!(
        several.data("A"),
        ["192.0.2.1", "192.0.2.11", "192.0.2.12", "192.0.2.13"]
    );

    // What the agent was told, per answer with addresses.
    let status = status(&mut s.proxy);
    let answers = std::mem::take(&mut s.proxy.control.dns_answers);
    let chain = answers
        .iter()
        .find(|a| a["name"] == "alias.allowed.test")
        .expect("dns_answer for the CNAME chain");
    assert_eq!(chain["ips"], json!(["192.0.2.30"]));
    assert_eq!(
        chain["cnames"],
        json!(["mid.allowed.test", "target.allowed.test"])
    );
    assert_eq!(chain["ttl"], 60, "lowest TTL along the chain");
    assert_eq!(
        (&chain["endpoint_id"], &chain["source"], &chain["rcode"]),
        (&json!(42), &json!("127.0.0.1"), &json!(0))
    );
    let multi = answers
        .iter()
        .find(|a| a["name"] == "multi.allowed.test")
        .unwrap();
    assert_eq!(multi["ips"].as_array().unwrap().len(), 3);
    assert_eq!(multi["ttl"], 300);
    assert!(answers
        .iter()
        .all(|a| a["name"] != "gone.allowed.test" && a["name"] != "www.denied.test"));

    // Counted per verdict: 4 allowed and 1 denied per transport, plus the
    // keep-open connection's 2 and 1.
    assert_eq!(dns_count(&status, "forwarded"), 10);
    assert_eq!(dns_count(&status, "denied"), 3);

    // The access log has requests and answers.
    let denied = s.proxy.control.wait_event(|e| {
        e["protocol"] == "dns" && e["verdict"] == "Denied" && e["path"] == "www.denied.test"
    });
    assert_eq!(
        (&denied["status"], &denied["method"]),
        (&json!(5), &json!("A"))
    );
    let answer = s.proxy.control.wait_event(|e| {
        e["protocol"] == "dns"
            && e["dns"]["kind"] == "response"
            && e["dns"]["query"] == "alias.allowed.test"
    });
    assert_eq!(answer["dns"]["ips"], json!(["192.0.2.30"]));
    assert_eq!(answer["dns"]["ttl"], 60);
    assert_eq!(answer["dns"]["qtypes"], json!(["A"]));
    assert_eq!(answer["verdict"], "Forwarded");
}

#[test]
fn denied_names_get_nxdomain_with_the_flag() {
    let s = setup(&[
        "--tofqdns-dns-reject-response-code",
        "nameError",
        "--tofqdns-proxy-response-max-delay",
        "0s",
    ]);
    for transport in ["+notcp", "+tcp"] {
        let denied = dig(s.port, &[transport, "www.denied.test"]);
        assert_eq!(denied.status, "NXDOMAIN", "{transport}");
        assert_eq!(
            dig(s.port, &[transport, "www.allowed.test"]).status,
            "NOERROR"
        );
    }
}

/// Sends `datagram` to the proxy; true when something came back.
fn answered(port: u16, datagram: &[u8]) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    socket.send_to(datagram, ("127.0.0.1", port)).unwrap();
    socket.recv(&mut [0u8; 512]).is_ok()
}

#[test]
fn malformed_messages_are_dropped_and_counted() {
    use std::io::{Read, Write};

    let mut s = setup(&["--dns-response-max-delay", "0s"]);
    let query = build_query(0x4242, "www.allowed.test", TYPE_A);
    let mut truncated = query.clone();
    truncated.truncate(query.len() - 3);
    let mut response = query.clone();
    response[2] |= 0x80;
    let mut looped = query[..12].to_vec();
    looped.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    for bad in [&b"\x12\x34garbage"[..], &truncated, &response, &looped, b""] {
        assert!(!answered(s.port, bad), "{bad:?} got an answer");
    }
    assert!(answered(s.port, &query), "a good query after the bad ones");

    // Over TCP the framing holds: a bad message is skipped, the next answered.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut frames = Vec::new();
    for message in [&truncated, &query] {
        frames.extend_from_slice(&(message.len() as u16).to_be_bytes());
        frames.extend_from_slice(message);
    }
    stream.write_all(&frames).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer[..2], &[0x42, 0x42]);

    let status = status(&mut s.proxy);
    assert_eq!(status["dns_malformed"], 6, "{status}");
    assert_eq!(dns_count(&status, "parse_error"), 6);
    assert_eq!(dns_count(&status, "forwarded"), 2);
}

/// Clients picking the same query id at the same time: the proxy's
/// upstream sockets give each query an id of their own, so every client
/// gets the answer to its own question, under its own id.
#[test]
fn concurrent_queries_with_the_same_id_each_get_their_own_answer() {
    use proxy::dns::wire::{parse, RecordData};
    let s = setup(&["--dns-response-max-delay", "0s"]);
    let names = [
        ("www.allowed.test", "192.0.2.1"),
        ("target.allowed.test", "192.0.2.30"),
    ];
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let port = s.port;
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut buf = [0u8; 512];
                for i in 0..200 {
                    let (name, ip) = names[(client + i) % names.len()];
                    socket
                        .send_to(&build_query(0x4242, name, TYPE_A), ("127.0.0.1", port))
                        .unwrap();
                    let len = socket.recv(&mut buf).expect("an answer");
                    let answer = parse(&buf[..len]).unwrap();
                    assert_eq!(answer.header.id, 0x4242);
                    assert_eq!(answer.questions[0].name, name);
                    let ips: Vec<String> = answer
                        .answers
                        .iter()
                        .filter_map(|r| match &r.data {
                            RecordData::A(ip) => Some(ip.to_string()),
                            _ => None,
                        })
                        .collect();
                    assert_eq!(ips, [ip], "client {client} query {i} for {name}");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("every client got its own answers");
    }
}

/// A server whose port is closed: the proxy learns it from ICMP and
/// answers SERVFAIL at once, not after its forwarding timeout.
#[test]
fn a_server_not_listening_gets_servfail_at_once() {
    let mut proxy = Proxy::start_with_args(&[], &[]);
    let port = free_port();
    let reply = proxy.control.command(json!({
        "op": "upsert_redirect",
        "redirect": {
            "proxy_port": port, "parser": "dns", "direction": "egress", "endpoint_id": 42,
            "policies": serde_json::from_str::<Value>(RULES).unwrap(),
            "fixed_upstream": format!("127.0.0.1:{}", free_port()),
        }
    }));
    assert_eq!(reply["type"], "ack", "{reply}");
    wait_for_port(port);
    let started = Instant::now();
    assert_eq!(dig(port, &["www.allowed.test"]).status, "SERVFAIL");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn answers_wait_for_the_agents_go_ahead() {
    let mut s = setup(&["--dns-response-max-delay", "30s"]);
    let port = s.port;
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(dig(port, &["multi.allowed.test"]));
    });
    let held = s.proxy.control.wait_dns_answer();
    assert_eq!(held["name"], "multi.allowed.test");
    assert_eq!(held["ips"].as_array().map(Vec::len), Some(3), "{held}");
    // Held: dig has no answer yet.
    assert!(done_rx.recv_timeout(Duration::from_millis(500)).is_err());
    let reply = s
        .proxy
        .control
        .command(json!({"op": "dns_answer_done", "id": held["id"]}));
    assert_eq!(reply["type"], "ack", "{reply}");
    let released = done_rx
        .recv_timeout(Duration::from_secs(3))
        .expect("released by dns_answer_done");
    assert_eq!(released.data("A").len(), 3);

    // No addresses, nothing to wait for.
    let started = Instant::now();
    assert_eq!(dig(s.port, &["gone.allowed.test"]).status, "NXDOMAIN");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn answers_are_released_after_the_max_delay_or_without_an_agent() {
    let mut s = setup(&["--dns-response-max-delay", "700ms"]);
    let started = Instant::now();
    assert_eq!(dig(s.port, &["www.allowed.test"]).status, "NOERROR");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(700), "{waited:?}");
    assert_eq!(
        s.proxy.control.wait_dns_answer()["name"],
        "www.allowed.test"
    );

    // The agent goes away (a connection without hello is no agent): the
    // proxy keeps its redirects and stops holding answers.
    let quiet = common::Control::connect_without_hello(&s.proxy.socket);
    drop(std::mem::replace(&mut s.proxy.control, quiet));
    let started = Instant::now();
    assert_eq!(dig(s.port, &["www.allowed.test"]).status, "NOERROR");
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(500), "{waited:?}");
}

/// The transparent path: in a private namespace, TPROXY steers UDP and TCP
/// to dnsmasq's port (53) onto the proxy's `IP_TRANSPARENT` sockets, except
/// the proxy's own marked queries. The original destination comes from
/// `IP_RECVORIGDSTADDR` (UDP) and the accepted socket (TCP); UDP answers
/// leave from 127.0.0.1:53 through the raw socket, else dig would not take
/// them.
#[test]
fn transparent_queries_are_judged_and_answered_from_the_server_address() {
    const PROXY_PORT: u16 = 15053;
    const PROXY_MARK: u32 = 0x77;
    let netns = Netns::new();
    let _dnsmasq = Dnsmasq::start(Some(&netns), 53);
    netns.route_to_proxy_locally();
    let mark = format!("{PROXY_MARK:#x}");
    let on_port = PROXY_PORT.to_string();
    for protocol in ["udp", "tcp"] {
        netns.must(&[
            "iptables",
            "-t",
            "mangle",
            "-A",
            "PREROUTING",
            "-p",
            protocol,
            "-d",
            "127.0.0.1",
            "--dport",
            "53",
            "-m",
            "mark",
            "!",
            "--mark",
            &mark,
            "-j",
            "TPROXY",
            "--on-port",
            &on_port,
            "--tproxy-mark",
            "0x200/0xf00",
        ]);
    }
    let prefix = netns.prefix();
    let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let mut proxy = Proxy::start_with_args(&prefix, &["--dns-response-max-delay", "0s"]);
    let reply = proxy.control.command(json!({
        "op": "sync",
        "ipcache": [{"prefix": "127.0.0.1/32", "identity": 777}],
        "redirects": [{
            "proxy_port": PROXY_PORT, "parser": "dns", "direction": "egress",
            "endpoint_id": 9, "upstream_mark": PROXY_MARK,
            "policies": [{"identity": 777, "rules": {"dns": [{"matchName": "www.allowed.test"}]}}]
        }]
    }));
    assert_eq!(reply["type"], "ack", "{reply}");
    for transport in ["+notcp", "+tcp"] {
        let allowed = dig_in(Some(&netns), 53, &[transport, "www.allowed.test"]);
        assert_eq!(allowed.status, "NOERROR", "{transport}");
        assert_eq!(allowed.data("A"), ["192.0.2.1"], "{transport}");
        // dnsmasq knows these names: only the proxy refuses them.
        for denied in ["multi.allowed.test", "www.denied.test"] {
            let refused = dig_in(Some(&netns), 53, &[transport, denied]);
            assert_eq!(refused.status, "REFUSED", "{transport} {denied}");
        }
    }
    let event = proxy.control.wait_event(|e| {
        e["protocol"] == "dns" && e["verdict"] == "Denied" && e["path"] == "www.denied.test"
    });
    assert_eq!(event["dst"], "127.0.0.1:53");
    assert_eq!(event["dst_identity"], 777);
    let answer = proxy.control.wait_dns_answer();
    assert_eq!(answer["name"], "www.allowed.test");
    assert_eq!(answer["endpoint_id"], 9);
}
