//! The L7 proxy's families: redirects the agent has configured, and the
//! requests cilium-proxy handled (its counters, polled by the supervisor).

use proxy::access_log::{L7Protocol, RequestCount, RequestOutcome};
use proxy::control::protocol::Parser;

use super::exposition::{Family, Kind};
use crate::daemon::Daemon;

/// Cilium's `proxy_type` label names the proxy implementation: `fqdn` for
/// its DNS proxy, `envoy` for the rest; ours is cilium-proxy.
const PROXY_TYPE: &str = "cilium-proxy";
const PROXY_TYPE_DNS: &str = "fqdn";

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
    for (protocol, parser) in [
        ("http", Parser::Http),
        ("kafka", Parser::Kafka),
        ("dns", Parser::Dns),
    ] {
        let n = parsers.iter().filter(|p| **p == parser).count();
        f.push(&[("protocol", protocol)], n as f64);
    }
    f
}

/// Cilium's rules: `received` counts every request, `forwarded`, `denied`
/// and `parse_errors` their verdicts (an upstream failure is only received).
fn requests_family(requests: &[RequestCount]) -> Family {
    let mut f = Family::new(
        "cilium_policy_l7_total",
        Kind::Counter,
        "Number of total L7 requests/responses",
    );
    for (proxy_type, dns) in [(PROXY_TYPE, false), (PROXY_TYPE_DNS, true)] {
        let sum = |keep: &dyn Fn(RequestOutcome) -> bool| -> u64 {
            requests
                .iter()
                .filter(|c| (c.protocol == L7Protocol::Dns) == dns && keep(c.outcome))
                .map(|c| c.count)
                .sum()
        };
        for (rule, n) in [
            ("received", sum(&|_| true)),
            ("forwarded", sum(&|o| o == RequestOutcome::Forwarded)),
            ("denied", sum(&|o| o == RequestOutcome::Denied)),
            ("parse_errors", sum(&|o| o == RequestOutcome::ParseError)),
        ] {
            f.push(&[("rule", rule), ("proxy_type", proxy_type)], n as f64);
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
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
            RequestCount {
                protocol: L7Protocol::Dns,
                ..count(RequestOutcome::Denied, 4)
            },
        ]);
        let values: Vec<(String, String, f64)> = f
            .samples
            .iter()
            .map(|s| (s.labels[0].1.clone(), s.labels[1].1.clone(), s.value))
            .collect();
        let row = |rule: &str, proxy: &str, n: f64| (rule.to_string(), proxy.to_string(), n);
        assert_eq!(
            values,
            [
                row("received", "cilium-proxy", 11.0),
                row("forwarded", "cilium-proxy", 5.0),
                row("denied", "cilium-proxy", 3.0),
                row("parse_errors", "cilium-proxy", 2.0),
                row("received", "fqdn", 4.0),
                row("forwarded", "fqdn", 0.0),
                row("denied", "fqdn", 4.0),
                row("parse_errors", "fqdn", 0.0),
            ]
        );
        let r = redirects_family(&[Parser::Http, Parser::Http, Parser::Kafka, Parser::Dns]);
        assert_eq!(
            r.samples.iter().map(|s| s.value).collect::<Vec<_>>(),
            [2.0, 1.0, 1.0]
        );
    }
}
