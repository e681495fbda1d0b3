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
//! Each test runs over IPv4 and over IPv6 (`_over_ipv6`: dual-stack pods,
//! kcat bootstrapping from the broker pod's `[ip6]:9092`, the relays
//! carrying every connection to that address; the mock broker itself only
//! listens on, and advertises, its loopback IPv4 address).
//!
//! Needs root, kcat and socat. Each test starts its own agent on private
//! paths and a /24 (the scene: tests/l7/kafka.rs).

#[path = "l7/kafka.rs"]
mod kafka;
#[path = "l7/support.rs"]
mod support;

use std::net::IpAddr;
use std::process::Output;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use kafka::{Family, KafkaScene};
use testbed::{AgentOptions, Monitor};

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

/// The scene of tests/l7/kafka.rs on an agent of its own, under
/// [`KAFKA_POLICY`], the clients reaching the broker over `family`.
fn start_scene(family: Family) -> Result<KafkaScene> {
    let scene = KafkaScene::start_over(family, AgentOptions::default().with_unique_range(), &[])?;
    support::apply_policy(&scene.agent, &[&scene.kafka], KAFKA_POLICY)?;
    Ok(scene)
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
    produce_allowed_topic_and_authorization_error_for_another_over(Family::V4)
}

#[test]
fn produce_allowed_topic_and_authorization_error_for_another_over_ipv6() -> Result<()> {
    produce_allowed_topic_and_authorization_error_for_another_over(Family::V6)
}

fn produce_allowed_topic_and_authorization_error_for_another_over(family: Family) -> Result<()> {
    let scene = start_scene(family)?;
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
    let producer_ip: IpAddr = match family {
        Family::V4 => scene.producer.ip().into(),
        Family::V6 => scene
            .producer
            .ip6()
            .context("producer without IPv6")?
            .into(),
    };
    ensure!(
        l7.protocol == "kafka"
            && l7.status == 29
            && denied.src_identity == producer_id
            && denied.endpoint == scene.kafka.endpoint_id()
            && denied.src_ip == producer_ip.to_string()
            && denied.dst_ip == scene.broker.ip().to_string(),
        "denied event must be Kafka status 29 from the producer ({producer_id}, {producer_ip}) \
         into the broker pod (endpoint {}, {}): {denied:?}",
        scene.kafka.endpoint_id(),
        scene.broker.ip()
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
    consume_role_fetches_the_topic_but_cannot_produce_to_it_over(Family::V4)
}

#[test]
fn consume_role_fetches_the_topic_but_cannot_produce_to_it_over_ipv6() -> Result<()> {
    consume_role_fetches_the_topic_but_cannot_produce_to_it_over(Family::V6)
}

fn consume_role_fetches_the_topic_but_cannot_produce_to_it_over(family: Family) -> Result<()> {
    let scene = start_scene(family)?;
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
