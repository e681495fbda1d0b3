//! Kafka under an L7 policy, through the datapath: real librdkafka clients
//! (kcat) in client pods against a librdkafka mock cluster in a `kafka`
//! pod. The broker's ingress rules say, per client identity, which topics it
//! may produce to (`role: produce`) or consume from (`role: consume`); the
//! datapath hands every client connection to cilium-proxy, which forwards
//! allowed requests and answers denied ones with TOPIC_AUTHORIZATION_FAILED
//! (29) on the same, still open, connection.
//!
//! Relays keep every connection on the policed path. The mock broker
//! listens on 127.0.0.1:P (P random) in the kafka pod and advertises that
//! address in its Metadata responses, so clients would otherwise reconnect
//! to their own loopback:
//!
//! ```text
//! client pod                      datapath + proxy             kafka pod
//! kcat -> socat 127.0.0.1:P ----> kafka-ip:9092 (policed) ---> socat kafka-ip:9092
//!                                                              -> mock 127.0.0.1:P
//! ```
//!
//! kcat bootstraps from, and is told by Metadata to use, 127.0.0.1:P; in
//! each client pod a socat listening there relays every connection to
//! kafka-ip:9092, pod to pod through the datapath on the policed port; in
//! the kafka pod a socat on kafka-ip:9092 relays to the mock. The proxy thus
//! sees each connection's real source pod (its identity) and every request.
//!
//! Needs root, kcat and socat. Each test starts its own agent on private
//! paths and a /24.

#[path = "l7/support.rs"]
mod support;

use std::process::Output;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use testbed::{Agent, AgentOptions, BackgroundProcess, Monitor, Pod};

const BROKER_PORT: u16 = 9092;
const READY_TIMEOUT: Duration = Duration::from_secs(10);

const KAFKA_POLICY: &str = "\
- endpointSelector:
    matchLabels: {app: kafka}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: producer}
    toPorts:
    - ports: [{port: \"9092\", protocol: TCP}]
      rules:
        kafka:
        - role: produce
          topic: orders
  - fromEndpoints:
    - matchLabels: {app: consumer}
    toPorts:
    - ports: [{port: \"9092\", protocol: TCP}]
      rules:
        kafka:
        - role: consume
          topic: orders
";

/// The broker, two clients, and the relays between them, under
/// [`KAFKA_POLICY`]. Field order is drop order: processes, pods, agent.
struct KafkaScene {
    _relays: Vec<BackgroundProcess>,
    _mock: BackgroundProcess,
    producer: Pod,
    consumer: Pod,
    kafka: Pod,
    /// What kcat bootstraps from in a client pod (the mock's own address).
    bootstrap: String,
    agent: Agent,
}

impl KafkaScene {
    fn start() -> Result<KafkaScene> {
        testbed::runtime::require_programs(&["kcat", "socat"], "kcat socat")?;
        let agent = Agent::start_with(AgentOptions::default().with_unique_range())?;
        let kafka = Pod::create(&agent, "kafka", &["k8s:app=kafka"])?;
        let producer = Pod::create(&agent, "producer", &["k8s:app=producer"])?;
        let consumer = Pod::create(&agent, "consumer", &["k8s:app=consumer"])?;
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

        support::apply_policy(&agent, &[&kafka], KAFKA_POLICY)?;
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
    fn produce(&self, pod: &Pod, topic: &str, message: &str) -> Result<Output> {
        // One file is one message: pod commands get no stdin.
        let file = self.agent.temp_dir().join(format!("{message}.msg"));
        std::fs::write(&file, message)?;
        let file = file.display().to_string();
        self.kcat(pod, &["-P", "-t", topic, &file])
    }

    /// Reads `topic` from the beginning to its end, from `pod`.
    fn consume(&self, pod: &Pod, topic: &str) -> Result<Output> {
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
fn relay(
    pod: &Pod,
    listen: &str,
    connect: &str,
    log: &std::path::Path,
) -> Result<BackgroundProcess> {
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

/// stdout and stderr together, for assertions and failure messages.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn produce_allowed_topic_and_authorization_error_for_another() -> Result<()> {
    let scene = KafkaScene::start()?;
    let mut monitor = Monitor::start(&scene.agent, &["l7"])?;

    let out = scene.produce(&scene.producer, "orders", "order-1")?;
    ensure!(
        out.status.success(),
        "producing to the allowed topic must succeed: {}\n{}",
        text(&out),
        support::proxy_report(&scene.agent)
    );
    let out = scene.produce(&scene.producer, "secrets", "plans")?;
    ensure!(
        !out.status.success()
            && text(&out)
                .to_lowercase()
                .contains("topic authorization failed"),
        "producing to a topic no rule names must fail with a topic authorization error, \
         not a dropped connection: {}",
        text(&out)
    );

    let producer_id = scene.producer.identity(&scene.agent)?;
    let denied = monitor
        .wait_for(
            |ev| {
                ev.l7.as_ref().is_some_and(|l7| {
                    l7.verdict == "Denied" && l7.topics.iter().any(|t| t == "secrets")
                })
            },
            Duration::from_secs(5),
        )
        .with_context(|| {
            format!(
                "no l7 monitor event denying topic secrets; seen: {:?}",
                monitor.seen()
            )
        })?;
    let l7 = denied.l7.as_ref().unwrap();
    ensure!(
        l7.protocol == "kafka"
            && l7.status == 29
            && denied.src_identity == producer_id
            && denied.endpoint == scene.kafka.endpoint_id(),
        "denied event must be Kafka status 29 from the producer ({producer_id}) into the \
         broker pod (endpoint {}): {denied:?}",
        scene.kafka.endpoint_id()
    );
    let forwarded = monitor.wait_for(
        |ev| {
            ev.l7.as_ref().is_some_and(|l7| {
                l7.verdict == "Forwarded"
                    && l7.method == "produce"
                    && l7.topics.iter().any(|t| t == "orders")
            })
        },
        Duration::from_secs(5),
    );
    ensure!(
        forwarded.is_some(),
        "no l7 monitor event for the forwarded produce to orders; seen: {:?}",
        monitor.seen()
    );
    Ok(())
}

#[test]
fn consume_role_fetches_the_topic_but_cannot_produce_to_it() -> Result<()> {
    let scene = KafkaScene::start()?;
    let out = scene.produce(&scene.producer, "orders", "order-2")?;
    ensure!(
        out.status.success(),
        "producer: {}\n{}",
        text(&out),
        support::proxy_report(&scene.agent)
    );

    let out = scene.consume(&scene.consumer, "orders")?;
    ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("order-2"),
        "role consume must fetch orders: {}\n{}",
        text(&out),
        support::proxy_report(&scene.agent)
    );
    let out = scene.produce(&scene.consumer, "orders", "forged")?;
    ensure!(
        !out.status.success()
            && text(&out)
                .to_lowercase()
                .contains("topic authorization failed"),
        "role consume must not produce to orders: {}",
        text(&out)
    );
    let out = scene.consume(&scene.producer, "orders")?;
    ensure!(
        !String::from_utf8_lossy(&out.stdout).contains("order-2")
            && text(&out).to_lowercase().contains("authorization failed"),
        "role produce must not fetch orders: {}",
        text(&out)
    );
    Ok(())
}
