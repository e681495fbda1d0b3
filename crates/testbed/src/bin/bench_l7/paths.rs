//! Before measuring: every setup's URLs answer, and cilium-proxy judges
//! the L7 ports and only those (a POST the rule does not allow gets its 403
//! in (b), the origin's 200 in (a) and (c)).

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{ensure, Result};
use testbed::{eventually, Pod};

use crate::nginx::ORIGIN_BODY;
use crate::report::{Protocol, Setup};
use crate::{
    ORIGIN_L4_H2C, ORIGIN_L4_HTTP1, ORIGIN_L7_H2C, ORIGIN_L7_HTTP1, RPROXY_H2C, RPROXY_HTTP1,
};

pub struct Urls {
    http1: [String; 3],
    http2: [String; 3],
}

impl Urls {
    pub fn new(origin: Ipv4Addr, rproxy: Ipv4Addr) -> Urls {
        let url = |ip: Ipv4Addr, port: u16| format!("http://{ip}:{port}/");
        Urls {
            http1: [
                url(origin, ORIGIN_L4_HTTP1),
                url(origin, ORIGIN_L7_HTTP1),
                url(rproxy, RPROXY_HTTP1),
            ],
            http2: [
                url(origin, ORIGIN_L4_H2C),
                url(origin, ORIGIN_L7_H2C),
                url(rproxy, RPROXY_H2C),
            ],
        }
    }

    pub fn get(&self, protocol: Protocol, setup: Setup) -> &str {
        let index = Setup::ALL
            .iter()
            .position(|s| *s == setup)
            .expect("every setup is in ALL");
        match protocol {
            Protocol::Http1 => &self.http1[index],
            Protocol::Http2 => &self.http2[index],
        }
    }
}

/// One curl in `pod`: (HTTP status, body).
fn curl(pod: &Pod, method: &str, url: &str, protocol: Protocol) -> Result<(String, String)> {
    let mut args = vec!["curl", "-s", "--max-time", "3", "-X", method];
    if protocol == Protocol::Http2 {
        args.push("--http2-prior-knowledge");
    }
    args.extend(["-w", "\n%{http_code}", url]);
    let out = pod.namespace().exec(&args)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((status.to_string(), body.to_string()))
}

/// Every setup answers GET with the origin's body; a POST is refused with
/// 403 by the proxy on the L7 ports only, so the proxy is in (b)'s path and
/// not in (a)'s or (c)'s.
pub fn check_paths(client: &Pod, urls: &Urls, http2: bool) -> Result<Vec<String>> {
    let mut checks = Vec::new();
    let protocols: &[Protocol] = if http2 {
        &[Protocol::Http1, Protocol::Http2]
    } else {
        &[Protocol::Http1]
    };
    for &protocol in protocols {
        for setup in Setup::ALL {
            let url = urls.get(protocol, setup);
            let mut last = (String::new(), String::new());
            // The first one waits for the proxy's listener and the datapath.
            let ok = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
                last = curl(client, "GET", url, protocol).unwrap_or_default();
                last.0 == "200" && last.1 == ORIGIN_BODY
            });
            ensure!(
                ok,
                "{} {}: GET {url} answered {:?} {:?}, want 200 {ORIGIN_BODY:?}",
                protocol.title(),
                setup.label(),
                last.0,
                last.1
            );
            let (status, body) = curl(client, "POST", url, protocol)?;
            let want = if setup == Setup::Proxy { "403" } else { "200" };
            ensure!(
                status == want && (want == "200" || body.starts_with("Access denied")),
                "{} {}: POST {url} answered {status} {body:?}, want {want}",
                protocol.title(),
                setup.label()
            );
        }
        checks.push(format!(
            "{}: GET answered 200 with the origin's body in all three setups; POST (not allowed \
             by the L7 rule) got `403 Access denied` from cilium-proxy in (b) and 200 from the \
             origin in (a) and (c).",
            protocol.title()
        ));
    }
    Ok(checks)
}
