//! DNS-aware policy end to end: a real dnsmasq on a host outside the
//! cluster, authoritative for the test's names, and a pod whose egress
//! rules allow DNS queries by name (`rules.dns`, through the DNS proxy) and
//! connections to what allowed names resolve to (`toFQDNs`). Clients are
//! real: dig over UDP and TCP, Python's getaddrinfo and curl by name (the
//! pod's resolv.conf points at the server).
//!
//! The outside host answers on every address of 198.18.0.0/21 (a local
//! route), so each name can have addresses of its own, all served.
//!
//! Needs root, dnsmasq, dig and python3 (`make setup`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use testbed::cluster::{
    Cluster, ClusterOptions, ClusterPod, DnsServer, DnsServerConfig, OutsideHost,
};
use testbed::{eventually, CliMonitor, HttpServer, TcpServer};

const SERVED: &str = "198.18.0.0/21";
const TCP_PORT: u16 = 8080;
/// Names the race check resolves, one address each.
const RACE_NAMES: usize = 1000;

/// The names dnsmasq answers: `name address [ttl]`; several lines with one
/// name are several A records.
const HOSTS: &[(&str, &str)] = &[
    ("web.allowed.test", "198.18.0.1"),
    ("multi.allowed.test", "198.18.0.2"),
    ("multi.allowed.test", "198.18.0.3"),
    ("multi.allowed.test", "198.18.0.4"),
    ("hidden.allowed.test", "198.18.0.7"),
    ("other.allowed.test", "198.18.0.8"),
    ("Part-Of-Ial.test", "198.18.0.10"),
    ("deep.sub.allowed.test", "198.18.0.11"),
    ("denied.test", "198.18.0.12"),
];

fn policy(dns_server: Ipv4Addr) -> String {
    format!(
        "\
- endpointSelector:
    matchLabels: {{app: client}}
  egress:
  - toCIDR: [{dns_server}/32]
    toPorts:
    - ports: [{{port: \"53\", protocol: ANY}}]
      rules:
        dns:
        - matchPattern: \"*.allowed.test\"
        - matchPattern: \"part*ial.test\"
        - matchPattern: \"*.race.test\"
        - matchName: short.test
        - matchName: deep.sub.allowed.test
  - toFQDNs:
    - matchName: web.allowed.test
    - matchName: MULTI.allowed.test.
    - matchName: alias.allowed.test
    - matchPattern: \"part*ial.test\"
    - matchPattern: \"*.allowed.test\"
    - matchName: short.test
    - matchPattern: \"*.race.test\"
    toPorts:
    - ports: [{{port: \"80\", protocol: TCP}}, {{port: \"8080\", protocol: TCP}}]
"
    )
}

/// dnsmasq on `host`, authoritative for the test names (the race names
/// too), with TTL `ttl` except `short.test` (2 s).
fn dns_server(host: &OutsideHost, dir: &Path, ttl: u32) -> Result<DnsServer> {
    let mut hosts: Vec<(String, Ipv4Addr)> = HOSTS
        .iter()
        .map(|(name, ip)| Ok((name.to_string(), ip.parse()?)))
        .collect::<Result<_>>()?;
    hosts.extend((0..RACE_NAMES).map(|i| (format!("n{i}.race.test"), race_ip(i))));
    DnsServer::start(
        host,
        dir,
        &DnsServerConfig {
            hosts,
            ttl,
            extra_config: vec![
                "cname=alias.allowed.test,hidden.allowed.test".into(),
                "host-record=short.test,198.18.0.9,2".into(),
            ],
            log_queries: true,
            ..Default::default()
        },
    )
}

fn race_ip(i: usize) -> Ipv4Addr {
    let n = 4 * 256 + i as u32;
    Ipv4Addr::new(198, 18, (n / 256) as u8, (n % 256) as u8)
}

/// The outside host answers HTTP (port 80) and plain TCP (8080, a line)
/// on every address of SERVED; the node routes SERVED to it.
fn serve_everything(cluster: &Cluster, host: &OutsideHost) -> Result<(HttpServer, TcpServer)> {
    cluster.route_to_outside(host, SERVED)?;
    Ok((
        HttpServer::start(host.namespace(), 80, "outside")?,
        TcpServer::start(host.namespace(), TCP_PORT, "outside".into())?,
    ))
}

/// `dig` from the pod: (status, answers).
fn dig(pod: &ClusterPod, server: Ipv4Addr, name: &str, tcp: bool) -> (String, Vec<String>) {
    let at = format!("@{server}");
    let mut args = vec!["dig", "+time=2", "+tries=1", &at, name];
    if tcp {
        args.push("+tcp");
    }
    let out = String::from_utf8_lossy(&pod.exec(&args).stdout).into_owned();
    let status = out
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("no answer")
        .to_string();
    let answers = out
        .split(";; ANSWER SECTION:")
        .nth(1)
        .map(|section| {
            section
                .lines()
                .take_while(|l| !l.trim().is_empty() || l.is_empty())
                .filter_map(|l| l.split_whitespace().last().map(str::to_string))
                .filter(|last| last.parse::<Ipv4Addr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    (status, answers)
}

/// What the node knows about names and their identities, for failures.
fn report(cluster: &Cluster) -> String {
    let node = cluster.node(0);
    let mut out = String::new();
    for args in [
        &["fqdn", "cache", "list"][..],
        &["bpf", "ipcache", "list"],
        &["identity", "list"],
        &["endpoint", "list"],
        &["bpf", "policy", "get", "--all"],
        &["bpf", "ct", "list", "global"],
    ] {
        let text = node.cli_ok(args).unwrap_or_else(|e| format!("{e:#}"));
        out.push_str(&format!("$ cilium {}\n{text}\n", args.join(" ")));
    }
    out
}

/// `name` resolves over UDP to exactly `ip`.
fn answers(pod: &ClusterPod, server: Ipv4Addr, name: &str, ip: &str) -> Result<()> {
    let (status, ips) = dig(pod, server, name, false);
    ensure!(
        status == "NOERROR" && ips == [ip],
        "{name}: {status} {ips:?}, expected {ip}"
    );
    Ok(())
}

fn connects(pod: &ClusterPod, ip: &str) -> bool {
    pod.tcp_connect(
        ip.parse().expect("an address"),
        TCP_PORT,
        Duration::from_millis(700),
    )
}

/// Runs `script` in the pod with a resolv.conf naming `server` (a mount
/// namespace of its own, so the machine's file stays as it is).
fn with_resolver(
    pod: &ClusterPod,
    dir: &Path,
    server: Ipv4Addr,
    script: &str,
) -> std::process::Output {
    let resolv = dir.join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {server}\noptions timeout:2 attempts:1\n"),
    )
    .unwrap();
    let inner = format!(
        "mount --bind {} /etc/resolv.conf && {script}",
        resolv.display()
    );
    pod.exec(&["unshare", "-m", "sh", "-c", &inner])
}

/// A one-node cluster with the test's policy imported, a client pod, and
/// the outside host serving DNS (answers live `ttl` s) and every served
/// address. Fields drop in order: servers and pod first, the cluster last.
struct Lab {
    client: ClusterPod,
    _dns: DnsServer,
    _web: (HttpServer, TcpServer),
    host: OutsideHost,
    dir: PathBuf,
    cluster: Cluster,
}

impl Lab {
    fn start(ttl: u32) -> Result<Lab> {
        let cluster = Cluster::start(ClusterOptions {
            nodes: 1,
            etcd_members: 0,
        })?;
        let dir = cluster.node(0).agent().temp_dir().to_path_buf();
        let host = cluster.outside_host("dns")?;
        let web = serve_everything(&cluster, &host)?;
        let dns = dns_server(&host, &dir, ttl)?;
        let client = cluster.pod(0, "client", &["k8s:app=client"])?;
        cluster.import_policy(&policy(host.ip()))?;
        Ok(Lab {
            client,
            _dns: dns,
            _web: web,
            host,
            dir,
            cluster,
        })
    }
}

#[test]
fn dns_rules_and_to_fqdns_follow_what_the_pod_resolves() -> Result<()> {
    let lab = Lab::start(60)?;
    let Lab {
        cluster,
        host,
        client,
        dir,
        ..
    } = &lab;
    let server = host.ip();

    // Before any lookup nothing resolved is reachable.
    ensure!(
        !connects(client, "198.18.0.1"),
        "198.18.0.1 reachable before any lookup"
    );

    // An allowed name resolves, and its address is reachable; an address no
    // answer gave stays dropped.
    let mut answered = (String::new(), Vec::new());
    let resolved = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
        answered = dig(client, server, "web.allowed.test", false);
        answered.1 == ["198.18.0.1"]
    });
    ensure!(
        resolved,
        "web.allowed.test over UDP: {answered:?}\n{}",
        cluster.describe()
    );
    ensure!(
        connects(client, "198.18.0.1"),
        "198.18.0.1 after resolving web.allowed.test\n{}",
        report(cluster)
    );
    ensure!(
        !connects(client, "198.18.0.50"),
        "198.18.0.50 was never an answer"
    );

    // Over TCP too, several A records, matchName in any case with a dot.
    let (status, ips) = dig(client, server, "multi.allowed.test", true);
    ensure!(
        status == "NOERROR" && ips.len() == 3,
        "multi over TCP: {status} {ips:?}"
    );
    for ip in &ips {
        ensure!(connects(client, ip), "{ip} of multi.allowed.test");
    }

    // A name the DNS rules do not allow: REFUSED, and nothing learned; the
    // monitor shows queries and answers with their verdicts.
    let monitor = CliMonitor::start(cluster.node(0).agent(), &["--type", "l7"])?;
    let (status, ips) = dig(client, server, "denied.test", false);
    ensure!(
        status == "REFUSED" && ips.is_empty(),
        "denied.test: {status} {ips:?}"
    );
    let (status, _) = dig(client, server, "denied.test", true);
    ensure!(status == "REFUSED", "denied.test over TCP: {status}");
    ensure!(!connects(client, "198.18.0.12"), "denied.test's address");
    let refused = monitor.wait_for_line(
        |l| l.contains("Request dns") && l.contains("verdict Denied DNS Query: denied.test. A"),
        Duration::from_secs(5),
    );
    ensure!(refused.is_some(), "no monitor line for the denied query");
    dig(client, server, "web.allowed.test", false);
    let answer = monitor.wait_for_line(
        |l| {
            l.contains("Response dns")
                && l.contains("Answer: '198.18.0.1' Query: web.allowed.test. A")
        },
        Duration::from_secs(5),
    );
    ensure!(
        answer.is_some(),
        "no monitor line for web.allowed.test's answer"
    );
    drop(monitor);

    // matchPattern edge cases: `*` within one label only, zero or more
    // characters; case-insensitive.
    answers(client, server, "part-of-ial.test", "198.18.0.10")?;
    ensure!(connects(client, "198.18.0.10"), "part*ial.test's address");
    let (status, _) = dig(client, server, "x.deep.sub.allowed.test", false);
    ensure!(
        status == "REFUSED",
        "*.allowed.test must not match two levels: {status}"
    );
    answers(client, server, "deep.sub.allowed.test", "198.18.0.11")?;
    ensure!(
        !connects(client, "198.18.0.11"),
        "deep.sub.allowed.test is allowed to resolve but no toFQDNs selector claims it"
    );

    // A CNAME chain: the query's name claims the chain's addresses.
    answers(client, server, "alias.allowed.test", "198.18.0.7")?;
    ensure!(
        connects(client, "198.18.0.7"),
        "alias.allowed.test's target address"
    );

    // Real resolvers: getaddrinfo and curl by name.
    let py = with_resolver(
        client,
        dir,
        server,
        "python3 -c 'import socket; print(socket.getaddrinfo(\"other.allowed.test\", 80, proto=socket.IPPROTO_TCP)[0][4][0])'",
    );
    ensure!(
        String::from_utf8_lossy(&py.stdout).trim() == "198.18.0.8",
        "getaddrinfo: {}{}",
        String::from_utf8_lossy(&py.stdout),
        String::from_utf8_lossy(&py.stderr)
    );
    let curl = with_resolver(
        client,
        dir,
        server,
        "curl -s --max-time 3 -o /dev/null -w '%{http_code}' http://other.allowed.test/",
    );
    ensure!(
        String::from_utf8_lossy(&curl.stdout) == "200",
        "curl by name: {}{}",
        String::from_utf8_lossy(&curl.stdout),
        String::from_utf8_lossy(&curl.stderr)
    );

    // The cache lists what was learned.
    let cache = cluster.node(0).cli_ok(&["fqdn", "cache", "list"])?;
    ensure!(
        cache.contains("multi.allowed.test") && cache.contains("198.18.0.1"),
        "cilium fqdn cache list:\n{cache}"
    );

    // The trace knows learned IPs' identities: port 8080 yes, 9090 no.
    let ipcache = cluster.node(0).cli_ok(&["bpf", "ipcache", "list"])?;
    let id = ipcache
        .lines()
        .find(|l| l.starts_with("198.18.0.1/32"))
        .and_then(|l| l.split("identity=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .with_context(|| format!("198.18.0.1 in the ipcache:\n{ipcache}"))?
        .to_string();
    for (port, verdict) in [("8080", "ALLOWED"), ("9090", "DENIED")] {
        let trace = cluster.node(0).cli_ok(&[
            "policy",
            "trace",
            "--src",
            "k8s:app=client",
            "--dst-identity",
            &id,
            "--dport",
            port,
        ])?;
        ensure!(
            trace.contains(&format!("Final verdict: {verdict}")),
            "trace to web.allowed.test's identity {id} port {port}:\n{trace}"
        );
    }

    let metrics = cluster.node(0).cli_ok(&["metrics", "list"])?;
    for family in [
        "cilium_fqdn_active_names",
        "cilium_fqdn_active_ips",
        "cilium_fqdn_selectors",
        "cilium_fqdn_gc_deletions_total",
    ] {
        ensure!(
            metrics.contains(family),
            "{family} missing from cilium metrics list"
        );
    }
    ensure!(
        metrics.lines().any(|l| l.contains("cilium_policy_l7_total")
            && l.contains("proxy_type=\"fqdn\"")
            && l.contains("rule=\"denied\"")),
        "DNS requests in cilium_policy_l7_total:\n{metrics}"
    );

    // TTL expiry: short.test lives 2 s; once it expired and no connection
    // uses the address, new connections are dropped.
    answers(client, server, "short.test", "198.18.0.9")?;
    ensure!(
        connects(client, "198.18.0.9"),
        "short.test right after the answer"
    );
    // (Probing by connecting would keep it alive: watch the cache.)
    let learned = Instant::now();
    let forgotten = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
        cluster
            .node(0)
            .cli_ok(&["fqdn", "cache", "list"])
            .is_ok_and(|cache| !cache.contains("short.test"))
    });
    ensure!(
        forgotten,
        "short.test still cached {:?} after a 2 s TTL\n{}",
        learned.elapsed(),
        report(cluster)
    );
    ensure!(
        !connects(client, "198.18.0.9"),
        "198.18.0.9 allowed after its TTL\n{}",
        report(cluster)
    );

    // The first connection right after each answer never races the policy.
    let race = with_resolver(
        client,
        dir,
        server,
        &format!(
            "python3 -c '
import socket
failed = []
for i in range({RACE_NAMES}):
    ip = socket.getaddrinfo(\"n%d.race.test\" % i, 80, proto=socket.IPPROTO_TCP)[0][4][0]
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((ip, 80))
    except OSError as e:
        failed.append((i, ip, str(e)))
    s.close()
print(len(failed), failed[:5])
'"
        ),
    );
    let out = String::from_utf8_lossy(&race.stdout).into_owned();
    ensure!(
        out.starts_with("0 "),
        "first connections after resolution that failed: {out}{}",
        String::from_utf8_lossy(&race.stderr)
    );
    Ok(())
}

#[test]
fn resolved_names_keep_working_across_an_agent_restart() -> Result<()> {
    let mut lab = Lab::start(600)?;
    let Lab {
        cluster,
        host,
        client,
        ..
    } = &mut lab;
    let server = host.ip();
    let resolved = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
        dig(client, server, "web.allowed.test", false).1 == ["198.18.0.1"]
    });
    ensure!(resolved, "web.allowed.test\n{}", cluster.describe());
    ensure!(
        connects(client, "198.18.0.1"),
        "198.18.0.1 before the restart"
    );

    cluster.kill_agent(0);
    ensure!(
        connects(client, "198.18.0.1"),
        "198.18.0.1 with the agent dead (kill -9)"
    );
    cluster.start_agent(0).context("restarting the agent")?;
    ensure!(
        connects(client, "198.18.0.1"),
        "198.18.0.1 after the restart\n{}",
        report(cluster)
    );
    answers(client, server, "other.allowed.test", "198.18.0.8")?;
    ensure!(
        connects(client, "198.18.0.8"),
        "other.allowed.test's address after the restart"
    );
    let (status, _) = dig(client, server, "denied.test", false);
    ensure!(
        status == "REFUSED",
        "denied.test after the restart: {status}"
    );
    Ok(())
}
