//! Test harness: runs the real `cilium-proxy` binary, speaks its control
//! protocol, and provides a small HTTP/1.1 upstream. Everything is cleaned up
//! by Drop guards (processes killed, temp dirs removed, namespaces released).
#![allow(dead_code)]

pub mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proxy::http1::RequestHead;
use serde_json::{json, Value};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!(
            "cilium-proxy-test-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The running proxy and one control connection to it.
pub struct Proxy {
    pub control: Control,
    pub socket: PathBuf,
    pub process: Process,
    pub dir: TempDir,
}

impl Proxy {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// `prefix`: a command to run the proxy under (e.g. `nsenter -t PID -n`).
    pub fn start_with(prefix: &[&str]) -> Self {
        Self::start_with_args(prefix, &[])
    }

    /// Also passes `args` to the proxy.
    pub fn start_with_args(prefix: &[&str], args: &[&str]) -> Self {
        let dir = TempDir::new("proxy");
        let socket = dir.0.join("proxy.sock");
        let binary = env!("CARGO_BIN_EXE_cilium-proxy");
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .arg("--config-socket")
            .arg(&socket)
            .arg("--threads")
            .arg("2")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let process = Process(command.spawn().expect("spawn cilium-proxy"));
        let control = Control::connect(&socket);
        Proxy {
            control,
            socket,
            process,
            dir,
        }
    }

    /// Upserts a test-mode redirect forwarding to `upstream`.
    pub fn fixed_redirect(&mut self, port: u16, parser: &str, upstream: &str, policies: Value) {
        let reply = self.control.command(json!({
            "op": "upsert_redirect",
            "redirect": {
                "proxy_port": port,
                "parser": parser,
                "direction": "ingress",
                "endpoint_id": 42,
                "policies": policies,
                "fixed_upstream": upstream,
            }
        }));
        assert_eq!(reply["type"], "ack", "{reply}");
        wait_for_port(port);
    }
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Control {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    seq: u64,
    pub events: Vec<Value>,
    /// `dns_answer` lines not yet taken by `wait_dns_answer`.
    pub dns_answers: Vec<Value>,
}

impl Control {
    pub fn connect(socket: &Path) -> Self {
        let mut control = Self::connect_without_hello(socket);
        let hello = control.command(json!({"op": "hello", "version": 1}));
        assert_eq!(hello["type"], "ack", "{hello}");
        control
    }

    /// A connection that has not said hello (so the proxy does not count
    /// it as an agent).
    pub fn connect_without_hello(socket: &Path) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(stream) => break stream,
                Err(err) => {
                    assert!(
                        Instant::now() < deadline,
                        "control socket {}: {err}",
                        socket.display()
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Control {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            seq: 0,
            events: Vec::new(),
            dns_answers: Vec::new(),
        }
    }

    fn read_line(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).expect("proxy writes JSON lines")),
        }
    }

    /// Sends a command (seq added) and returns its ack/error reply.
    pub fn command(&mut self, mut command: Value) -> Value {
        self.seq += 1;
        command["seq"] = json!(self.seq);
        let mut line = serde_json::to_vec(&command).unwrap();
        line.push(b'\n');
        self.writer.write_all(&line).unwrap();
        loop {
            let reply = self.read_line().expect("reply from proxy");
            if reply["type"] == "access_log" {
                self.events.push(reply["event"].clone());
            } else if reply["type"] == "dns_answer" {
                self.dns_answers.push(reply);
            } else {
                return reply;
            }
        }
    }

    /// Waits for the next `dns_answer` line (held answers not released).
    pub fn wait_dns_answer(&mut self) -> Value {
        if !self.dns_answers.is_empty() {
            return self.dns_answers.remove(0);
        }
        loop {
            let reply = self.read_line().expect("dns_answer before timeout");
            match reply["type"].as_str() {
                Some("access_log") => self.events.push(reply["event"].clone()),
                Some("dns_answer") => return reply,
                _ => {}
            }
        }
    }

    /// Waits until an access-log event satisfies `wanted`.
    pub fn wait_event(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(event) = self.events.iter().find(|e| wanted(e)) {
            return event.clone();
        }
        loop {
            let reply = self.read_line().expect("access-log event before timeout");
            if reply["type"] == "dns_answer" {
                self.dns_answers.push(reply);
            } else if reply["type"] == "access_log" {
                let event = reply["event"].clone();
                self.events.push(event.clone());
                if wanted(&event) {
                    return event;
                }
            }
        }
    }
}

/// An HTTP/1.1 upstream: answers `200` with a body that echoes the raw request
/// (head and body bytes) it received, keep-alive as the client asks. Like a
/// real server it sends `100 Continue` to a request that expects it and no
/// body to `HEAD`; `X-Reply-Status: N` asks for status N with an empty body
/// (`content-length: 0`, or no length at all for 204). Every request is kept
/// in `received`, so a test can check what really arrived.
pub struct EchoServer {
    pub addr: String,
    received: Arc<Mutex<Vec<Received>>>,
}

/// One request as the echo upstream read it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which upstream connection (numbered from 0 in accept order) carried it.
    pub connection: usize,
    pub head: RequestHead,
    /// The payload, chunked coding removed.
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl EchoServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        std::thread::spawn(move || {
            for (connection, stream) in listener.incoming().flatten().enumerate() {
                let log = Arc::clone(&log);
                std::thread::spawn(move || echo_connection(stream, connection, &log));
            }
        });
        EchoServer { addr, received }
    }

    /// The requests received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn echo_connection(mut stream: TcpStream, connection: usize, log: &Mutex<Vec<Received>>) {
    use proxy::http1::chunked::ChunkedDecoder;
    use proxy::http1::{parse_request, BodyFraming};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let head = loop {
            if let Ok(Some(head)) = parse_request(&buf) {
                break head;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        if head.expects_continue() && stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            return;
        }
        let mut end = head.head_len;
        match head.framing {
            BodyFraming::Length(n) => {
                while buf.len() < end + n as usize {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                end += n as usize;
            }
            BodyFraming::Chunked => {
                let mut decoder = ChunkedDecoder::default();
                let mut at = end;
                loop {
                    at += decoder
                        .advance(&buf[at..])
                        .expect("valid chunks from the proxy");
                    if decoder.is_done() {
                        break;
                    }
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                end = at;
            }
            _ => {}
        }
        let request: Vec<u8> = buf.drain(..end).collect();
        let body = &request[head.head_len..];
        let received = Received {
            connection,
            body: match head.framing {
                BodyFraming::Chunked => dechunk(body),
                _ => body.to_vec(),
            },
            head,
        };
        let response = echo_response(&received, &request);
        let keep_alive = received.head.keep_alive;
        log.lock().unwrap().push(received);
        if stream.write_all(&response).is_err() || !keep_alive {
            return;
        }
    }
}

fn echo_response(request: &Received, raw: &[u8]) -> Vec<u8> {
    if let Some(status) = request.header("x-reply-status") {
        let length = if status == "204" {
            ""
        } else {
            "content-length: 0\r\n"
        };
        return format!("HTTP/1.1 {status} Empty\r\nx-upstream: echo\r\n{length}\r\n").into_bytes();
    }
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nx-upstream: echo\r\ncontent-length: {}\r\n\r\n",
        raw.len()
    )
    .into_bytes();
    if request.head.method != "HEAD" {
        response.extend_from_slice(raw);
    }
    response
}

/// The payload of a whole, valid chunked body (extensions and trailers dropped).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return payload;
        }
        let data = line_end + 2;
        payload.extend_from_slice(&body[data..data + size]);
        body = &body[data + size + 2..];
    }
}

pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run {program} (install it: see /work/notes/proxy.md): {err}")
        })
}

/// `curl` returning (status code, body).
pub fn curl(args: &[&str]) -> (u16, String) {
    let mut all = vec!["-s", "-S", "--max-time", "10", "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    let output = run("curl", &all);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Writes raw bytes, then reads until the peer closes (or times out).
pub fn raw_exchange(port: u16, request: &[u8]) -> (String, bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let closed = match stream.read_to_end(&mut response) {
        Ok(_) => true,
        Err(err) => !matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    (String::from_utf8_lossy(&response).into_owned(), closed)
}

/// Reads exactly one Content-Length-framed response from `stream`.
pub fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Ok(Some(head)) = proxy::http1::parse_response(&buf, "GET") {
            if let proxy::http1::BodyFraming::Length(n) = head.framing {
                if buf.len() >= head.head_len + n as usize {
                    return String::from_utf8_lossy(&buf).into_owned();
                }
            }
        }
        let n = stream.read(&mut chunk).expect("response before timeout");
        assert!(
            n > 0,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}
