//! BPF map sizes come from the agent's flags (Cilium's names), status shows
//! the sizes the kernel has, a nearly full map is reported with the flag that
//! resizes it, and a policy map pinned with another size is rebuilt at the
//! new size, entries kept, when the agent restarts with a new flag value.
//!
//! Needs root; one agent, one pod.

use std::time::{Duration, Instant};

use api::BpfMapProperties;
use testbed::{Agent, AgentOptions, Pod};

const SMALL: u32 = 64;
const BIGGER: u32 = 128;
/// Allowed ports: one policy map entry each, over 90% of [`SMALL`].
const PORTS: u16 = 58;

fn ports_policy() -> String {
    let mut text = String::from(
        "- endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - toPorts:\n    - ports:\n",
    );
    for port in 10_000..10_000 + PORTS {
        text.push_str(&format!("      - {{port: \"{port}\", protocol: TCP}}\n"));
    }
    text
}

/// The map's row in `GET /v1/healthz` once `ready` holds (the pressure
/// watcher looks every 10 s).
fn map_row(
    agent: &Agent,
    name: &str,
    ready: impl Fn(&BpfMapProperties) -> bool,
) -> BpfMapProperties {
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let maps = agent.client().healthz().unwrap().bpf_maps.maps;
        match maps.iter().find(|m| m.name == name) {
            Some(m) if ready(m) => return m.clone(),
            last if Instant::now() > deadline => {
                panic!(
                    "{name}: never as expected; last {last:#?}\n{}",
                    agent.log_tail()
                )
            }
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

#[test]
fn policy_map_size_follows_the_flag_and_a_full_map_names_it() {
    let mut agent = Agent::start_with(AgentOptions {
        extra_args: vec!["--bpf-policy-map-max".into(), SMALL.to_string()],
        ..AgentOptions::default().with_unique_range()
    })
    .unwrap();
    let server = Pod::create(&agent, "server", &["k8s:app=server"]).unwrap();
    agent.import_policy(&ports_policy(), &[&server]).unwrap();
    let name = format!("cilium_policy_{:05}", server.endpoint_id());

    let row = map_row(&agent, &name, |m| !m.warning.is_empty());
    assert_eq!(row.size, u64::from(SMALL), "{row:#?}");
    assert!(row.entries >= u64::from(PORTS), "{row:#?}");
    assert!(
        row.warning.contains("nearly full") && row.warning.ends_with("raise --bpf-policy-map-max"),
        "{row:#?}"
    );
    let status = agent.cli_ok(&["status", "--verbose"]).unwrap();
    assert!(
        status.contains(&format!("Warning: BPF map {name} is nearly full")),
        "{status}"
    );
    let verbose_row = status
        .lines()
        .find(|l| l.trim_start().starts_with(&name))
        .unwrap_or_else(|| panic!("no {name} row in:\n{status}"));
    assert!(
        verbose_row.split_whitespace().nth(2) == Some(&SMALL.to_string()),
        "{verbose_row}"
    );
    assert!(
        agent.log_tail().contains(&row.warning),
        "the agent log must carry the warning:\n{}",
        agent.log_tail()
    );

    // A restart with a bigger size rebuilds the pinned map, entries kept.
    agent.set_flag("--bpf-policy-map-max", &BIGGER.to_string());
    agent.restart().unwrap();
    let row2 = map_row(&agent, &name, |m| m.size == u64::from(BIGGER));
    assert_eq!(row2.entries, row.entries, "{row2:#?}");
    assert!(row2.warning.is_empty(), "{row2:#?}");
    assert!(
        agent.log_tail().contains(&format!(
            "BPF map {name} rebuilt with {BIGGER} entries (was {SMALL})"
        )),
        "{}",
        agent.log_tail()
    );
}
