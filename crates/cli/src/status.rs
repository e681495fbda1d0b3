//! `cilium status`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use api::{Client, Status, StatusResponse};

use crate::output::{emit, to_json, OutputFormat};
use crate::table::Table;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
    /// Detail every map and controller, and list every allocated address
    #[arg(long = "verbose")]
    verbose: bool,
    /// Show all controllers, not just failing
    #[arg(long = "all-controllers")]
    all_controllers: bool,
    /// Show all allocated addresses, not just count
    #[arg(long = "all-addresses")]
    all_addresses: bool,
    /// Only print a one-line status message
    #[arg(long)]
    brief: bool,
}

pub fn run(client: &Client, args: &StatusArgs) -> Result<ExitCode> {
    let status = client.healthz().context("cannot get agent status")?;
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&status)?),
        None if args.brief => emit(&brief(&status)),
        None => {
            let mut text = render(&status);
            if args.verbose || args.all_addresses {
                text.push_str(&addresses(&status));
            }
            text.push_str(&details(&status, args.verbose, args.all_controllers));
            emit(&text)
        }
    }
    // Like Cilium: a failing agent makes `status` fail, so scripts can wait on it.
    Ok(if status.cilium.state == Status::FAILURE {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub fn render(s: &StatusResponse) -> String {
    let mut t = Table::new();
    t.row(["KVStore:", &s.kvstore.state, &s.kvstore.msg]);
    match &s.kubernetes {
        Some(k8s) => {
            t.row(["Kubernetes:", &k8s.state, &k8s.msg]);
            t.row([
                "Kubernetes APIs:".to_string(),
                format!("[{}]", k8s.k8s_api_versions.join(", ")),
            ]);
            for error in &k8s.policy_errors {
                t.row(["Policy not enforced:".to_string(), error.clone()]);
            }
        }
        None => {
            t.row(["Kubernetes:", "Disabled"]);
        }
    }
    t.row(["Cilium:", &s.cilium.state, &s.cilium.msg]);
    t.row(["IPAM:".to_string(), ipam_line(s)]);
    t.row([
        "Policy:".to_string(),
        format!("revision {}, {} rules", s.policy.revision, s.policy.rules),
    ]);
    t.row(["Endpoints:".to_string(), s.endpoints.to_string()]);
    t.render()
}

/// Cilium's `--brief`: `OK`, or `error in ...` naming the first unhealthy
/// part (controllers only when everything else is healthy).
pub fn brief(s: &StatusResponse) -> String {
    let unhealthy = |state: &str| state == Status::WARNING || state == Status::FAILURE;
    let problem = if unhealthy(&s.kvstore.state) {
        Some(format!("kvstore: {}", s.kvstore.msg))
    } else if let Some(k8s) = s.kubernetes.as_ref().filter(|k| unhealthy(&k.state)) {
        Some(format!("kubernetes: {}", k8s.msg))
    } else if unhealthy(&s.cilium.state) {
        Some(format!("cilium: {}", s.cilium.msg))
    } else if unhealthy(&s.cluster_health.state) {
        Some(format!("cilium-health: {}", s.cluster_health.msg))
    } else {
        s.controllers
            .iter()
            .find(|c| !c.status.last_failure_msg.is_empty())
            .map(|c| format!("controller {}: {}", c.name, c.status.last_failure_msg))
    };
    match problem {
        None => "OK\n".to_string(),
        Some(what) => format!("error in {what}\n"),
    }
}

/// `--all-addresses`: every allocated address, one per line.
fn addresses(s: &StatusResponse) -> String {
    let mut out = String::from("Allocated addresses:\n");
    for ip in &s.ipam.ipv4 {
        out.push_str(&format!("  {ip}\n"));
    }
    out
}

/// Datapath, maps, proxy and controllers: a summary line each with every
/// problem spelled out; `verbose` lists every map and controller,
/// `all_controllers` every controller.
pub fn details(s: &StatusResponse, verbose: bool, all_controllers: bool) -> String {
    let mut t = Table::new();
    let states: Vec<String> = s
        .endpoint_states
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    if !states.is_empty() {
        t.row(["Endpoint states:".to_string(), states.join(", ")]);
    }
    if !s.datapath.state.is_empty() {
        t.row([
            "Datapath:",
            s.datapath.state.as_str(),
            s.datapath.msg.as_str(),
        ]);
    }
    if let Some(fullest) = s
        .bpf_maps
        .maps
        .iter()
        .max_by(|a, b| a.pressure.total_cmp(&b.pressure))
    {
        t.row([
            "BPF maps:".to_string(),
            format!(
                "{} maps, fullest {} at {:.1}%",
                s.bpf_maps.maps.len(),
                fullest.name,
                fullest.pressure * 100.0
            ),
        ]);
    }
    if !s.proxy.state.is_empty() {
        t.row(["Proxy:", s.proxy.state.as_str(), s.proxy.msg.as_str()]);
    }
    if !s.controllers.is_empty() {
        let healthy = s
            .controllers
            .iter()
            .filter(|c| c.status.consecutive_failure_count == 0)
            .count();
        t.row([
            "Controller Status:".to_string(),
            format!("{healthy}/{} healthy", s.controllers.len()),
        ]);
    }
    if !s.cluster_health.state.is_empty() {
        t.row(["Cluster health:".to_string(), cluster_health_line(s)]);
    }
    let mut out = t.render();
    for m in s.bpf_maps.maps.iter().filter(|m| !m.warning.is_empty()) {
        out.push_str(&format!("  Warning: {}\n", m.warning));
    }
    for c in s
        .controllers
        .iter()
        .filter(|c| c.status.consecutive_failure_count > 0)
    {
        out.push_str(&format!(
            "  Failing controller {}: {} consecutive failures, last success {}, last error: {}\n",
            c.name,
            c.status.consecutive_failure_count,
            or_never(&c.status.last_success_timestamp),
            c.status.last_failure_msg
        ));
    }
    if verbose {
        out.push_str(&maps_table(s));
    }
    if verbose || all_controllers {
        out.push_str(&controllers_table(s));
    }
    out
}

fn maps_table(s: &StatusResponse) -> String {
    let mut maps = Table::new();
    maps.row(["  Name", "Entries", "Size", "Pressure"]);
    for m in &s.bpf_maps.maps {
        maps.row([
            format!("  {}", m.name),
            m.entries.to_string(),
            m.size.to_string(),
            format!("{:.1}%", m.pressure * 100.0),
        ]);
    }
    format!("BPF maps:\n{}", maps.render())
}

fn controllers_table(s: &StatusResponse) -> String {
    let mut ctl = Table::new();
    ctl.row(["  Name", "Last success", "Last error", "Count", "Message"]);
    for c in &s.controllers {
        let st = &c.status;
        ctl.row([
            format!("  {}", c.name),
            or_never(&st.last_success_timestamp).to_string(),
            or_never(&st.last_failure_timestamp).to_string(),
            format!("{}/{}", st.consecutive_failure_count, st.failure_count),
            if st.last_failure_msg.is_empty() {
                "no error".to_string()
            } else {
                st.last_failure_msg.clone()
            },
        ]);
    }
    format!("Controllers:\n{}", ctl.render())
}

fn or_never(timestamp: &str) -> &str {
    if timestamp.is_empty() {
        "never"
    } else {
        timestamp
    }
}

/// `2/3 reachable   (TIME)` like Cilium, naming the nodes that are not.
fn cluster_health_line(s: &StatusResponse) -> String {
    let h = &s.cluster_health;
    if h.state == Status::DISABLED {
        return h.state.clone();
    }
    if h.timestamp.is_empty() {
        return format!("{}   {}", h.state, h.msg);
    }
    let mut line = format!("{}/{} reachable   ({})", h.reachable, h.total, h.timestamp);
    if !h.msg.is_empty() {
        line.push_str(&format!("   {}", h.msg));
    }
    line
}

fn ipam_line(s: &StatusResponse) -> String {
    format!(
        "IPv4: {}/{} allocated from {}",
        s.ipam.ipv4.len(),
        s.ipam.capacity,
        s.ipam.alloc_range
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::{IpamStatus, PolicyStatus};

    #[test]
    fn renders_cilium_like_status() {
        let s = StatusResponse {
            cilium: Status {
                state: "Ok".into(),
                msg: "1.0 (cilium-rs)".into(),
            },
            kvstore: Status {
                state: "Ok".into(),
                msg: "embedded".into(),
            },
            ipam: IpamStatus {
                ipv4: vec![
                    "10.200.0.1".into(),
                    "10.200.0.5".into(),
                    "10.200.0.6".into(),
                ],
                alloc_range: "10.200.0.0/16".into(),
                capacity: 65534,
                ..Default::default()
            },
            policy: PolicyStatus {
                revision: 4,
                rules: 2,
            },
            endpoints: 2,
            ..Default::default()
        };
        let text = render(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "KVStore:      Ok   embedded");
        assert_eq!(lines[1], "Kubernetes:   Disabled");
        assert_eq!(lines[2], "Cilium:       Ok   1.0 (cilium-rs)");
        assert_eq!(
            lines[3],
            "IPAM:         IPv4: 3/65534 allocated from 10.200.0.0/16"
        );
        assert_eq!(lines[4], "Policy:       revision 4, 2 rules");
        assert_eq!(lines[5], "Endpoints:    2");
    }

    #[test]
    fn details_spell_out_failures_and_full_maps() {
        use api::{BpfMapProperties, BpfMapStatus, ControllerRunStatus, ControllerStatus};
        let s = StatusResponse {
            datapath: Status {
                state: "Ok".into(),
                msg: "2 endpoint programs attached".into(),
            },
            bpf_maps: BpfMapStatus {
                maps: vec![BpfMapProperties {
                    name: "cilium_ct4_global".into(),
                    size: 100,
                    entries: 95,
                    pressure: 0.95,
                    warning: "BPF map cilium_ct4_global is nearly full".into(),
                }],
            },
            controllers: vec![
                ControllerStatus {
                    name: "ct-map-gc".into(),
                    status: ControllerRunStatus {
                        failure_count: 3,
                        consecutive_failure_count: 2,
                        last_failure_msg: "boom".into(),
                        ..Default::default()
                    },
                },
                ControllerStatus {
                    name: "bpf-map-pressure".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let text = details(&s, false, false);
        assert!(
            text.contains("Datapath:            Ok   2 endpoint programs attached\n"),
            "{text}"
        );
        assert!(
            text.contains("BPF maps:            1 maps, fullest cilium_ct4_global at 95.0%\n"),
            "{text}"
        );
        assert!(
            text.contains("Controller Status:   1/2 healthy\n"),
            "{text}"
        );
        assert!(text.contains("  Warning: BPF map cilium_ct4_global is nearly full\n"));
        assert!(text.contains("  Failing controller ct-map-gc: 2 consecutive failures, last success never, last error: boom\n"), "{text}");
        assert!(
            !text.contains("Cluster health"),
            "an agent without a checker"
        );
        let verbose = details(&s, true, false);
        assert!(
            verbose.contains("  cilium_ct4_global   95        100    95.0%"),
            "{verbose}"
        );
        assert!(verbose.contains("  ct-map-gc"));
        let controllers = details(&s, false, true);
        assert!(controllers.contains("  bpf-map-pressure"), "{controllers}");
        assert!(!controllers.contains("Entries"), "{controllers}");
    }

    #[test]
    fn brief_is_ok_or_names_the_first_problem() {
        use api::{ControllerRunStatus, ControllerStatus};
        let mut s = StatusResponse::default();
        assert_eq!(brief(&s), "OK\n");
        s.controllers = vec![ControllerStatus {
            name: "ct-map-gc".into(),
            status: ControllerRunStatus {
                last_failure_msg: "boom".into(),
                ..Default::default()
            },
        }];
        assert_eq!(brief(&s), "error in controller ct-map-gc: boom\n");
        s.cilium = Status {
            state: Status::FAILURE.into(),
            msg: "datapath gone".into(),
        };
        assert_eq!(brief(&s), "error in cilium: datapath gone\n");
    }

    #[test]
    fn cluster_health_names_unreachable_nodes() {
        let mut s = StatusResponse {
            cluster_health: api::ClusterHealthStatus {
                state: "Warning".into(),
                msg: "unreachable: node2".into(),
                reachable: 2,
                total: 3,
                timestamp: "2024-01-01T00:00:00Z".into(),
                unreachable: vec!["node2".into()],
            },
            ..Default::default()
        };
        let text = details(&s, false, false);
        assert!(
            text.contains(
                "Cluster health:   2/3 reachable   (2024-01-01T00:00:00Z)   unreachable: node2\n"
            ),
            "{text}"
        );
        s.cluster_health.state = "Disabled".into();
        assert!(details(&s, false, false).contains("Cluster health:   Disabled\n"));
    }
}
