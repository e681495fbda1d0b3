//! A Kafka broker and two client pods on one agent, shared by the tests
//! that police Kafka: real librdkafka clients (kcat) against a librdkafka
//! mock cluster in a `kafka` pod, with relays keeping every connection on
//! the policed path (see tests/l7_kafka.rs for the picture). Callers import
//! the policy.
//!
//! Needs kcat and socat.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result};
use testbed::{Agent, AgentOptions, BackgroundProcess, Pod};

pub const BROKER_PORT: u16 = 9092;
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which address family the policed hops use: the clients reach the
/// broker pod's IPv4 or its IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// The broker, two clients, and the relays between them. Field order is
/// drop order: processes, pods, agent.
pub struct KafkaScene {
    _relays: Vec<BackgroundProcess>,
    _mock: BackgroundProcess,
    pub producer: Pod,
    pub consumer: Pod,
    pub kafka: Pod,
    /// The broker pod's address and port the clients' connections reach
    /// through the datapath (and the proxy).
    pub broker: SocketAddr,
    /// What kcat bootstraps from in a client pod: the mock's own address
    /// (IPv4), or the broker pod's `[ip6]:9092` (IPv6).
    pub bootstrap: String,
    pub agent: Agent,
}

impl KafkaScene {
    /// An agent with `options`, pods `kafka` (app=kafka), `producer` and
    /// `consumer`, each also labelled `extra_labels`, the mock broker and
    /// the relays; no policy yet.
    pub fn start_with(options: AgentOptions, extra_labels: &[&str]) -> Result<KafkaScene> {
        Self::start_over(Family::V4, options, extra_labels)
    }

    /// [`start_with`](Self::start_with), the clients reaching the broker
    /// over `family`. Over IPv6 the pods are dual stack, the broker's relay
    /// listens on its IPv6 address and kcat bootstraps from there
    /// (`[ip6]:9092`); the mock broker still advertises its loopback
    /// address, which the client relays carry to `[ip6]:9092` too.
    pub fn start_over(
        family: Family,
        options: AgentOptions,
        extra_labels: &[&str],
    ) -> Result<KafkaScene> {
        testbed::runtime::require_programs(&["kcat", "socat"], "kcat socat")?;
        let agent = Agent::start_with(options)?;
        let pod = |name: &str| {
            let app = format!("k8s:app={name}");
            let mut labels = vec![app.as_str()];
            labels.extend_from_slice(extra_labels);
            match family {
                Family::V4 => Pod::create(&agent, name, &labels),
                Family::V6 => Pod::create_dual_stack(&agent, name, &labels),
            }
        };
        let kafka = pod("kafka")?;
        let producer = pod("producer")?;
        let consumer = pod("consumer")?;
        let logs = agent.temp_dir();

        // An idle producer hosts the mock cluster (one broker) for as long
        // as its stdin stays open.
        let mut mock = BackgroundProcess::spawn(
            kafka.namespace(),
            &[
                "kcat",
                "-X",
                "test.mock.num.brokers=1",
                "-b",
                "unused:9092",
                "-P",
                "-t",
                "seed",
            ],
            &logs.join("mock.log"),
        )?;
        let mock_addr = mock.wait_for_log(READY_TIMEOUT, |log| {
            let (_, rest) = log.split_once("replaced with ")?;
            // Only a complete line: the address may still be half-written.
            let (addr, _) = rest.split_once('\n')?;
            Some(addr.trim().to_string())
        })?;
        let mock_port = mock_addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .with_context(|| format!("mock cluster address {mock_addr:?}"))?;

        let broker_ip: IpAddr = match family {
            Family::V4 => kafka.ip().into(),
            Family::V6 => kafka
                .ip6()
                .context("the kafka pod has no IPv6 address")?
                .into(),
        };
        let broker = SocketAddr::new(broker_ip, BROKER_PORT);
        let tcp = match family {
            Family::V4 => "TCP4",
            Family::V6 => "TCP6",
        };
        let mut relays = Vec::new();
        // socat wants an IPv6 host in brackets, as in an address.
        let bind = match broker_ip {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        let broker_side = format!("{tcp}-LISTEN:{BROKER_PORT},bind={bind},reuseaddr,fork");
        let to_mock = format!("TCP:127.0.0.1:{mock_port}");
        relays.push(relay(
            &kafka,
            &broker_side,
            &to_mock,
            &logs.join("relay-kafka.log"),
        )?);
        let client_side = format!("TCP-LISTEN:{mock_port},bind=127.0.0.1,reuseaddr,fork");
        let to_broker = format!("{tcp}:{broker}");
        for pod in [&producer, &consumer] {
            let log = logs.join(format!("relay-{}.log", pod.name()));
            relays.push(relay(pod, &client_side, &to_broker, &log)?);
        }
        Ok(KafkaScene {
            _relays: relays,
            _mock: mock,
            producer,
            consumer,
            kafka,
            broker,
            bootstrap: match family {
                Family::V4 => format!("127.0.0.1:{mock_port}"),
                Family::V6 => broker.to_string(),
            },
            agent,
        })
    }

    /// Produces `message` to `topic` from `pod`.
    pub fn produce(&self, pod: &Pod, topic: &str, message: &str) -> Result<Output> {
        // One file is one message: pod commands get no stdin.
        let file = self.agent.temp_dir().join(format!("{message}.msg"));
        std::fs::write(&file, message)?;
        let file = file.display().to_string();
        self.kcat(pod, &["-P", "-t", topic, &file])
    }

    /// Reads `topic` from the beginning to its end, from `pod`.
    pub fn consume(&self, pod: &Pod, topic: &str) -> Result<Output> {
        self.kcat(pod, &["-C", "-t", topic, "-o", "beginning", "-e"])
    }

    fn kcat(&self, pod: &Pod, args: &[&str]) -> Result<Output> {
        let mut full = vec!["timeout", "10", "kcat", "-b", &self.bootstrap];
        full.extend_from_slice(args);
        pod.namespace().exec(&full)
    }
}

/// `socat` relaying every connection accepted on `listen` to `connect`,
/// once it listens.
fn relay(pod: &Pod, listen: &str, connect: &str, log: &Path) -> Result<BackgroundProcess> {
    let mut socat = BackgroundProcess::spawn(
        pod.namespace(),
        &["socat", "-d", "-d", listen, connect],
        log,
    )?;
    socat.wait_for_log(READY_TIMEOUT, |log| {
        log.contains("listening on").then_some(())
    })?;
    Ok(socat)
}
