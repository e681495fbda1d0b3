//! A Kafka broker and two client pods on one agent, shared by the tests
//! that police Kafka: real librdkafka clients (kcat) against a librdkafka
//! mock cluster in a `kafka` pod, with relays keeping every connection on
//! the policed path (see tests/l7_kafka.rs for the picture). Callers import
//! the policy.
//!
//! Needs kcat and socat.

#![allow(dead_code)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result};
use testbed::{Agent, AgentOptions, BackgroundProcess, Pod};

pub const BROKER_PORT: u16 = 9092;
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker, two clients, and the relays between them. Field order is
/// drop order: processes, pods, agent.
pub struct KafkaScene {
    _relays: Vec<BackgroundProcess>,
    _mock: BackgroundProcess,
    pub producer: Pod,
    pub consumer: Pod,
    pub kafka: Pod,
    /// What kcat bootstraps from in a client pod (the mock's own address).
    pub bootstrap: String,
    pub agent: Agent,
}

impl KafkaScene {
    /// An agent with `options`, pods `kafka` (app=kafka), `producer` and
    /// `consumer`, each also labelled `extra_labels`, the mock broker and
    /// the relays; no policy yet.
    pub fn start_with(options: AgentOptions, extra_labels: &[&str]) -> Result<KafkaScene> {
        testbed::runtime::require_programs(&["kcat", "socat"], "kcat socat")?;
        let agent = Agent::start_with(options)?;
        let pod = |name: &str| {
            let app = format!("k8s:app={name}");
            let mut labels = vec![app.as_str()];
            labels.extend_from_slice(extra_labels);
            Pod::create(&agent, name, &labels)
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

        let mut relays = Vec::new();
        let broker_side = format!(
            "TCP-LISTEN:{BROKER_PORT},bind={},reuseaddr,fork",
            kafka.ip()
        );
        let to_mock = format!("TCP:127.0.0.1:{mock_port}");
        relays.push(relay(
            &kafka,
            &broker_side,
            &to_mock,
            &logs.join("relay-kafka.log"),
        )?);
        let client_side = format!("TCP-LISTEN:{mock_port},bind=127.0.0.1,reuseaddr,fork");
        let to_broker = format!("TCP:{}:{BROKER_PORT}", kafka.ip());
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
            bootstrap: format!("127.0.0.1:{mock_port}"),
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
