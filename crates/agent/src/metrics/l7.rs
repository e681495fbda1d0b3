//! The L7 proxy's families: redirects the agent has configured, and the
//! requests cilium-proxy handled (its counters, polled by the supervisor).

use proxy::access_log::{RequestCount, RequestOutcome};
use proxy::control::protocol::Parser;

use super::exposition::{Family, Kind};
use crate::daemon::Daemon;

/// Cilium's `proxy_type` label names the proxy implementation (`envoy`,
/// `fqdn`); ours is cilium-proxy.
const PROXY_TYPE: &str = "cilium-proxy";

pub fn families(daemon: &Daemon) -> Vec<Family> {
    let desired = daemon.proxy_desired();
    let parsers: Vec<Parser> = desired
        .borrow()
        .redirects
        .iter()
        .map(|r| r.parser)
        .collect();
    let requests = daemon
        .proxy_health()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .requests
        .clone();
    vec![redirects_family(&parsers), requests_family(&requests)]
}

fn redirects_family(parsers: &[Parser]) -> Family {
    let mut f = Family::new(
        "cilium_proxy_redirects",
        Kind::Gauge,
        "Number of redirects installed for endpoints",
    );
    for (protocol, parser) in [("http", Parser::Http), ("kafka", Parser::Kafka)] {
        let n = parsers.iter().filter(|p| **p == parser).count();
        f.push(&[("protocol", protocol)], n as f64);
    }
    f
}

/// Cilium's rules: `received` counts every request, `forwarded`, `denied`
/// and `parse_errors` their verdicts (an upstream failure is only received).
fn requests_family(requests: &[RequestCount]) -> Family {
    let sum = |keep: &dyn Fn(RequestOutcome) -> bool| -> u64 {
        requests
            .iter()
            .filter(|c| keep(c.outcome))
            .map(|c| c.count)
            .sum()
    };
    let mut f = Family::new(
        "cilium_policy_l7_total",
        Kind::Counter,
        "Number of total L7 requests/responses",
    );
    for (rule, n) in [
        ("received", sum(&|_| true)),
        ("forwarded", sum(&|o| o == RequestOutcome::Forwarded)),
        ("denied", sum(&|o| o == RequestOutcome::Denied)),
        ("parse_errors", sum(&|o| o == RequestOutcome::ParseError)),
    ] {
        f.push(&[("rule", rule), ("proxy_type", PROXY_TYPE)], n as f64);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy::access_log::L7Protocol;
    use proxy::control::protocol::Direction;

    fn count(outcome: RequestOutcome, count: u64) -> RequestCount {
        RequestCount {
            direction: Direction::Ingress,
            protocol: L7Protocol::Http,
            outcome,
            count,
        }
    }

    #[test]
    fn requests_sum_into_cilium_rules() {
        let f = requests_family(&[
            count(RequestOutcome::Forwarded, 5),
            count(RequestOutcome::Denied, 3),
            count(RequestOutcome::Error, 1),
            count(RequestOutcome::ParseError, 2),
        ]);
        let values: Vec<(String, f64)> = f
            .samples
            .iter()
            .map(|s| (s.labels[0].1.clone(), s.value))
            .collect();
        assert_eq!(
            values,
            [
                ("received".to_string(), 11.0),
                ("forwarded".to_string(), 5.0),
                ("denied".to_string(), 3.0),
                ("parse_errors".to_string(), 2.0)
            ]
        );
        let r = redirects_family(&[Parser::Http, Parser::Http, Parser::Kafka]);
        assert_eq!(
            r.samples.iter().map(|s| s.value).collect::<Vec<_>>(),
            [2.0, 1.0]
        );
    }
}
