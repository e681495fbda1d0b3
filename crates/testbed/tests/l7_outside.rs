//! L7 policy for peers outside the cluster: a host on the node's underlay
//! (`world`) and another node's own stack (`remote-node`) as clients of a
//! pod under an ingress HTTP rule, and a server on the underlay behind a
//! pod's egress HTTP rule. Real curl, real packets through the node.
//!
//! The proxy accepts a client's connection under the pod's address; the
//! client's later packets arrive on the node's device and must reach the
//! proxy's socket, not be forwarded towards the pod (bpf_host sees to it).
//!
//! Needs root (and etcd for the two-node test).

#[path = "l7/support.rs"]
#[allow(dead_code)] // not every helper is needed here
mod support;

use std::time::Duration;

use anyhow::{ensure, Result};
use testbed::cluster::{Cluster, ClusterOptions};
use testbed::{eventually, HttpServer};

const WEB_FROM_OUTSIDE: &str = "\
- endpointSelector:
    matchLabels: {app: web}
  ingress:
  - fromEntities: [world, remote-node]
    toPorts:
    - ports: [{port: \"80\", protocol: TCP}]
      rules:
        http:
        - method: GET
          path: /public
        - method: POST
          path: /upload
";

const CLIENT_TO_OUTSIDE: &str = "\
- endpointSelector:
    matchLabels: {app: client}
  egress:
  - toEntities: [world]
    toPorts:
    - ports: [{port: \"80\", protocol: TCP}]
      rules:
        http:
        - method: GET
          path: /public
";

/// curl's arguments for one or more URLs on one connection: each answer's
/// body followed by ` <status>` (`000` when the connection failed).
fn curl<'a>(extra: &[&'a str], urls: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["curl", "-s", "--max-time", "3", "-w", " %{http_code}"];
    args.extend_from_slice(extra);
    args.extend_from_slice(urls);
    args
}

fn text(out: std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `request` until it answers `expected` (the policy being realized),
/// else fails naming what came back, with the proxy's and nodes' view.
fn eventually_answers(
    cluster: &Cluster,
    what: &str,
    expected: &str,
    request: impl Fn() -> String,
) -> Result<()> {
    let mut last = String::new();
    let answered = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
        last = request();
        last == expected
    });
    ensure!(
        answered,
        "{what}: expected {expected:?}, got {last:?}\n{}\n{}",
        support::proxy_report(cluster.node(0).agent()),
        cluster.describe()
    );
    Ok(())
}

#[test]
fn ingress_http_rules_hold_for_clients_outside_the_cluster() -> Result<()> {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 2,
        etcd_members: 1,
    })?;
    let web = cluster.pod(0, "web", &["k8s:app=web"])?;
    let _server = HttpServer::start(web.namespace(), 80, "web")?;
    let outside = cluster.outside_host("client")?;
    cluster.import_policy(WEB_FROM_OUTSIDE)?;
    let url = |path: &str| format!("http://{}{path}", web.ip());
    let (public, private, upload) = (url("/public"), url("/private"), url("/upload"));

    eventually_answers(
        &cluster,
        "GET /public from outside the cluster is allowed by web's ingress rule",
        "web GET /public\n 200",
        || text(outside.exec(&curl(&[], &[&public]))),
    )?;
    // One connection, allowed and denied requests in turn: the proxy holds
    // it open across a 403.
    let several = text(outside.exec(&curl(&[], &[&private, &public, &private])));
    ensure!(
        several == "Access denied\r\n 403web GET /public\n 200Access denied\r\n 403",
        "three requests on one connection from outside, got {several:?}"
    );
    let empty_post = text(outside.exec(&curl(&["-X", "POST", "-d", ""], &[&public])));
    ensure!(
        empty_post == "Access denied\r\n 403",
        "POST /public (Content-Length: 0) is not in the rule, got {empty_post:?}"
    );
    // A body big enough for many segments and ACKs each way.
    let body =
        outside
            .namespace()
            .exec_ok(&["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x"])?;
    let file = cluster.node(0).agent().temp_dir().join("upload.bin");
    std::fs::write(&file, body)?;
    let data = format!("@{}", file.display());
    let uploaded = text(outside.exec(&curl(&["--data-binary", &data], &[&upload])));
    ensure!(
        uploaded == "web POST /upload\n 200",
        "a 1 MiB POST /upload from outside, got {uploaded:?}"
    );

    // Node 1's own stack reaches web through the overlay as remote-node.
    let node1 = cluster.node(1).netns();
    let from_node = text(node1.exec(&curl(&[], &[&public, &private]))?);
    ensure!(
        from_node == "web GET /public\n 200Access denied\r\n 403",
        "GET /public then /private from node 1's host stack, got {from_node:?}"
    );
    Ok(())
}

#[test]
fn egress_http_rules_hold_towards_a_server_outside_the_cluster() -> Result<()> {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 1,
        etcd_members: 0,
    })?;
    let client = cluster.pod(0, "client", &["k8s:app=client"])?;
    let outside = cluster.outside_host("server")?;
    let _server = HttpServer::start(outside.namespace(), 80, "outside")?;
    cluster.import_policy(CLIENT_TO_OUTSIDE)?;
    let url = |path: &str| format!("http://{}{path}", outside.ip());
    let (public, private) = (url("/public"), url("/private"));

    eventually_answers(
        &cluster,
        "GET /public to a server outside the cluster is allowed by the client's egress rule",
        "outside GET /public\n 200",
        || text(client.exec(&curl(&[], &[&public]))),
    )?;
    let several = text(client.exec(&curl(&[], &[&private, &public])));
    ensure!(
        several == "Access denied\r\n 403outside GET /public\n 200",
        "GET /private then /public on one connection to outside, got {several:?}"
    );
    Ok(())
}
