//! The results page: each measurement with its target, how it was taken,
//! and the machine it ran on.

use std::fmt::Write as _;
use std::time::Duration;

use testbed::bench::stats::{median, nearest_rank};
use testbed::bench::{machine, Machine};

use crate::changes::ChangeSample;
use crate::{Args, Results, NODES};

const MIB: f64 = 1024.0;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Missing values (the signal never came within the limit) count as
/// infinitely late.
fn late(values: &[Option<Duration>]) -> Vec<f64> {
    values.iter().map(|v| v.map_or(f64::INFINITY, ms)).collect()
}

fn show(value: f64) -> String {
    if value.is_infinite() {
        "> 15 s".into()
    } else if value >= 100.0 {
        format!("{value:.0} ms")
    } else {
        format!("{value:.1} ms")
    }
}

/// `| p50 | p99 | max |` cells.
fn cells(values: &[f64]) -> String {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{} | {} | {}",
        show(nearest_rank(values, 0.5)),
        show(nearest_rank(values, 0.99)),
        show(max)
    )
}

fn verdict(p99: f64, limit_ms: f64) -> &'static str {
    if p99 < limit_ms {
        "✓"
    } else {
        "✗"
    }
}

pub fn page(args: &Args, machine: &Machine, build: &[String], r: &Results) -> String {
    let mut page = format!(
        "# Kubernetes mode at cluster scale (issue 16), {} mode, {}\n\n",
        args.mode, machine.date
    );
    let _ = write!(
        page,
        "{NODES} testbed nodes, each a network namespace with its own cilium-agent in Kubernetes \
         mode (the admin kubeconfig; `--identity-allocation-mode {}`: {}), against the real control \
         plane (kube-apiserver and kube-controller-manager v1.37.2 on etcd 3.6.17, no kubelet, no \
         scheduler). **{} Pod objects** before measurement 1: {} with a network namespace (a \
         server and a prober on every node, one stranger), made by `k8s_pod` as a kubelet would \
         (Pod object with `spec.nodeName`, CNI ADD, Ready status), and {} objects only, spread \
         evenly over the nodes with a kubelet-style Running/Ready status (created as one List in \
         {:.1} s, status written by one server-side apply of the status subresource in {:.1} s). \
         {} Pod objects at the end. Only the pods with a namespace are endpoints: the others are \
         in each agent's pod cache (each agent watches its node's pods) but give no identities, \
         so policy is computed over {} endpoints, not thousands. One `kubectl` run costs \
         {:.0} ms here before it does anything (`kubectl get --raw /readyz`, median of 5).\n\n",
        args.mode,
        if args.mode == "crd" {
            "identities, endpoints and nodes as CiliumIdentity, CiliumEndpoint and CiliumNode \
             objects, no etcd"
        } else {
            "identities, endpoints and nodes in etcd, one member"
        },
        r.setup.pod_objects,
        r.setup.pod_objects - r.setup.fillers,
        r.setup.fillers,
        r.setup.create_fillers.as_secs_f64(),
        r.setup.filler_status.as_secs_f64(),
        r.pod_objects_end,
        r.setup.pod_objects - r.setup.fillers + args.new_pods,
        ms(r.setup.kubectl_noop),
    );
    changes_section(&mut page, r);
    new_pods_section(&mut page, args, r);
    footprint_section(&mut page, r);
    machine_section(&mut page, machine, build, r);
    page
}

fn changes_section(page: &mut String, r: &Results) {
    let c = &r.changes;
    let pick =
        |f: fn(&ChangeSample) -> Option<Duration>| late(&c.iter().map(f).collect::<Vec<_>>());
    let traffic = pick(|s| s.traffic);
    let target = verdict(nearest_rank(&traffic, 0.99), 1000.0);
    let _ = write!(
        page,
        "## 1. `kubectl apply` → enforced on every node ({} changes)\n\n\
         Each change is one `kubectl apply` of a CiliumNetworkPolicy in namespace `bench`, one at \
         a time: even changes create `flip-NNN`, opening port 8080 of the 5 servers (`app: \
         flip-server`, one per node) to `app: prober`; odd changes update the same object to port \
         9, closing it again (a base CNP keeps the servers isolated). {} CNPs exist at the end. \
         Times run from just before `kubectl apply` starts; each row is the latest of the 5 nodes \
         (pairs) for that change. Target: p99 < 1 s (Cilium's published figure: < 600 ms to \
         enforce 250 CNPs with 10k pods).\n\n\
         | signal (latest node) | p50 | p99 | max | target |\n|---|---:|---:|---:|---|\n",
        c.len(),
        c.len().div_ceil(2) + 2,
    );
    let write = late(&r.write_received);
    let after_write: Vec<f64> = traffic
        .iter()
        .zip(&write)
        .map(|(t, w)| if w.is_finite() { t - w } else { f64::INFINITY })
        .collect();
    let rows: [(&str, Vec<f64>, String); 7] = [
        ("`kubectl apply` returned", pick(|s| Some(s.kubectl)), String::new()),
        (
            "kube-apiserver received the object's write (audit log)",
            write.clone(),
            String::new(),
        ),
        (
            "CNP status: all 5 nodes `enforcing` at a new `localPolicyRevision` (kubectl watch)",
            pick(|s| s.status),
            String::new(),
        ),
        (
            "each node's server endpoint reports realized `policy-revision` ≥ that revision (agent API)",
            pick(|s| s.revision),
            String::new(),
        ),
        (
            "**traffic**: all 5 pairs flipped (prober on the next node)",
            traffic.clone(),
            format!("p99 < 1 s {target}"),
        ),
        (
            "from the write's arrival to all 5 pairs flipped (per change)",
            after_write,
            String::new(),
        ),
        (
            "agents' own time for the change (slowest node's log `total`)",
            r.agent_ms.iter().map(|v| v.unwrap_or(f64::INFINITY)).collect(),
            String::new(),
        ),
    ];
    for (name, values, target) in rows {
        let _ = writeln!(page, "| {name} | {} | {target} |", cells(&values));
    }
    let split = |allows: bool| -> Vec<f64> {
        c.iter()
            .filter(|s| s.allows == allows)
            .map(|s| s.traffic.map_or(f64::INFINITY, ms))
            .collect()
    };
    let resolution: Vec<f64> = c.iter().map(|s| ms(s.traffic_resolution)).collect();
    let _ = write!(
        page,
        "\nTraffic by direction: create (opens) p50/p99/max {}; update (closes) {}. Per pair \
         (server's node), p50 / p99:",
        cells(&split(true)).replace(" | ", " / "),
        cells(&split(false)).replace(" | ", " / "),
    );
    for node in 0..NODES {
        let v = late(
            &c.iter()
                .map(|s| s.traffic_per_node[node])
                .collect::<Vec<_>>(),
        );
        let _ = write!(
            page,
            " node{node} {} / {};",
            show(nearest_rank(&v, 0.5)),
            show(nearest_rank(&v, 0.99))
        );
    }
    let _ = write!(
        page,
        "\nThe traffic time is the start of the first attempt of the run the pair settled on; the \
         change happened after the attempt before it. That gap (the precision) was {} median, {} \
         at most.\n\n",
        show(median(&resolution)),
        show(resolution.iter().copied().fold(0.0, f64::max)),
    );
    let opt = |v: Option<Duration>| v.map_or("—".to_string(), |d| format!("{:.0}", ms(d)));
    page.push_str(
        "<details><summary>Every change (ms)</summary>\n\n\
         | # | change | kubectl | write received | status | revision | traffic | slowest pair | agent |\n\
         |---:|---|---:|---:|---:|---:|---:|---|---:|\n",
    );
    for (k, ((s, agent), write)) in c.iter().zip(&r.agent_ms).zip(&r.write_received).enumerate() {
        let slowest = s
            .traffic_per_node
            .iter()
            .enumerate()
            .max_by_key(|(_, t)| t.unwrap_or(Duration::MAX))
            .map_or(String::new(), |(node, _)| format!("node{node}"));
        let _ = writeln!(
            page,
            "| {k} | {} | {:.0} | {} | {} | {} | {} | {slowest} | {} |",
            if s.created {
                "create, opens"
            } else {
                "update, closes"
            },
            ms(s.kubectl),
            opt(*write),
            opt(s.status),
            opt(s.revision),
            opt(s.traffic),
            agent.map_or("—".to_string(), |a| format!("{a:.1}")),
        );
    }
    page.push_str("\n</details>\n\n");
}

fn identity_store(mode: &str) -> &'static str {
    match mode {
        "crd" => "a CiliumIdentity object",
        _ => "in etcd",
    }
}

fn address_store(mode: &str) -> &'static str {
    match mode {
        "crd" => "from the CiliumEndpoint and CiliumIdentity watches",
        _ => "from etcd",
    }
}

fn new_pods_section(page: &mut String, args: &Args, r: &Results) {
    let p = &r.new_pods;
    let ready: Vec<f64> = p.iter().map(|s| ms(s.ready)).collect();
    let reach = late(&p.iter().map(|s| s.reachable).collect::<Vec<_>>());
    let first_try = p.iter().filter(|s| s.failed_attempts == 0).count();
    let failed: Vec<f64> = p.iter().map(|s| s.failed_attempts as f64).collect();
    let _ = write!(
        page,
        "## 2. Pod created → reachable under policy from another node ({} pods)\n\n\
         Pod `fresh-NNN` (`app: fresh`) on node i mod 5, made by `k8s_pod`: `kubectl apply` of \
         the Pod object with `spec.nodeName`, `kubectl get` of its UID, `cilium-cni ADD` in the \
         node's namespace, `kubectl patch` of its status (IP, Ready). Then a TCP server starts in \
         it, and the prober on the next node connects every 5 ms (20 ms handshake limit) until \
         one connection completes. The interval runs from just before the Pod object is created \
         to the start of that first successful attempt, so it includes the three `kubectl` runs \
         (the kubelet's part here, ~{:.0} ms each before any work), the CNI ADD (the agent waits \
         for the pod from its watch, allocates the identity ({}), builds the endpoint) and the \
         other node learning the new identity and address ({}). A CNP lets only `app: prober` \
         in; after the last pod the bench checked that the stranger on node 0 is refused and \
         the probers are let in.\n\n\
         | interval | p50 | p99 | max | target |\n|---|---:|---:|---:|---|\n\
         | `k8s_pod` returned (object, CNI ADD, Ready) | {} | |\n\
         | **first connection from another node** | {} | p99 < 1 s {} |\n\n\
         {first_try} of {} pods were reachable at the first attempt after `k8s_pod` returned \
         (failed attempts before success: median {:.0}, max {:.0}).\n\n",
        p.len(),
        ms(r.setup.kubectl_noop),
        identity_store(&args.mode),
        address_store(&args.mode),
        cells(&ready),
        cells(&reach),
        verdict(nearest_rank(&reach, 0.99), 1000.0),
        p.len(),
        median(&failed),
        failed.iter().copied().fold(0.0, f64::max),
    );
}

fn footprint_section(page: &mut String, r: &Results) {
    let f = &r.footprint;
    let minutes = f.window.as_secs_f64() / 60.0;
    let _ = write!(
        page,
        "## 3. Agents at steady state ({:.0} s quiet window)\n\n\
         After both measurements, with {} Pod objects and every CNP in place, nothing changing. \
         Memory from `/proc/<agent>/status` at the end of the window; CPU over it. Requests: \
         kube-apiserver's audit log (`K8S_AUDIT=1`: one line per request received, level \
         Metadata), counted by source address between the bench's two `/metrics` scrapes that \
         open and close the window. Every agent uses the same admin kubeconfig, but each runs in \
         its node's namespace and reaches the API server from its node IP; kubectl and \
         kube-controller-manager come from the bridge. `apiserver_request_total` has no client \
         label, so it only gives the total of all clients.\n\n\
         | node | VmRSS | of which anon / file | VmHWM (peak) | CPU (quiet) | API requests / min | RSS target |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
        f.window.as_secs_f64(),
        r.pod_objects_end,
    );
    for a in &f.agents {
        let requests: usize = f
            .requests
            .agents
            .get(&a.node)
            .map_or(0, |r| r.values().sum());
        let rss = a.rss_kib as f64 / MIB;
        let _ = writeln!(
            page,
            "| {} | {rss:.1} MiB | {:.1} / {:.1} | {:.1} MiB | {:.2} % | {:.1} | < 64 MiB {} |",
            a.node,
            a.anon_kib as f64 / MIB,
            a.file_kib as f64 / MIB,
            a.hwm_kib as f64 / MIB,
            a.cpu_percent,
            requests as f64 / minutes,
            verdict(rss, 64.0),
        );
    }
    page.push_str("\nVmRSS over the run (MiB):\n\n| when |");
    for a in &f.agents {
        let _ = write!(page, " {} |", a.node);
    }
    page.push_str("\n|---|");
    page.push_str(&"---:|".repeat(f.agents.len()));
    page.push('\n');
    for (when, values) in &r.rss {
        let _ = write!(page, "| {when} |");
        for v in values {
            let _ = write!(page, " {:.1} |", *v as f64 / MIB);
        }
        page.push('\n');
    }
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for requests in f.requests.agents.values() {
        for (kind, n) in requests {
            *kinds.entry(kind).or_default() += n;
        }
    }
    let agents = f.requests.agents.len().max(1) as f64;
    let _ = write!(page, "\nAgents' requests by kind, per agent per minute:");
    if kinds.is_empty() {
        page.push_str(" none.");
    }
    for (kind, n) in &kinds {
        let _ = write!(page, " `{kind}` {:.2};", *n as f64 / agents / minutes);
    }
    let run_minutes = f.run_seconds / 60.0;
    let _ = write!(
        page,
        "\nOver the whole run ({:.0} s from the API server's first request to the window's end: \
         start-up, Pod objects, every change and new pod, the window), per agent: ",
        f.run_seconds
    );
    let mut run_kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for (node, requests) in &f.whole_run.agents {
        let total: usize = requests.values().sum();
        let _ = write!(
            page,
            "{node} {total} ({:.1}/min); ",
            total as f64 / run_minutes
        );
        for (kind, n) in requests {
            *run_kinds.entry(kind).or_default() += n;
        }
    }
    page.push_str("by kind, per agent:");
    for (kind, n) in &run_kinds {
        let _ = write!(page, " `{kind}` {:.1};", *n as f64 / agents);
    }
    let others: usize = f.requests.others.values().sum();
    let _ = write!(
        page,
        "\nOther clients in the same window, per minute: {:.1} in all (",
        others as f64 / minutes
    );
    let mut users: Vec<_> = f.requests.others.iter().collect();
    users.sort_by(|a, b| b.1.cmp(a.1));
    for (user, n) in users.iter().take(5) {
        let _ = write!(page, "`{user}` {:.1}; ", **n as f64 / minutes);
    }
    let _ = write!(
        page,
        "…). `apiserver_request_total` (all clients, counted when a request ends, so watches \
         opened earlier count when they close) rose by {:.0}, {:.1} per minute.\n\n",
        f.request_total_delta,
        f.request_total_delta / minutes
    );
}

fn machine_section(page: &mut String, machine: &Machine, build: &[String], r: &Results) {
    page.push_str("## Machine\n\n");
    for (fact, value) in machine.facts(build) {
        let _ = writeln!(page, "- {fact}: {value}");
    }
    for (what, load) in &r.loads {
        let _ = writeln!(page, "- load average when {what} began: {load}");
    }
    let _ = writeln!(page, "- load average at end: {}", machine::load_average());
}
