//! Large policy imports through the real `cilium` CLI: 100,000 CIDR rules
//! (what a platform with many CIDR rules needs) import in one request, and a
//! body over the agent's API limit (`api::MAX_REQUEST_BODY_BYTES`, 128 MiB)
//! is refused with an error naming the limit — not a broken pipe — and
//! nothing of it is applied.
//!
//! Needs root (the agent loads BPF programs).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use api::models::MAX_REQUEST_BODY_BYTES;
use testbed::{Agent, AgentOptions};

const CIDR_RULES: usize = 100_000;

/// `count` egress rules, each allowing one /32 to a workload of its own,
/// labelled so it could be deleted on its own: the shape of a platform's
/// generated CIDR policy.
fn cidr_rules(count: usize) -> String {
    let mut yaml = String::with_capacity(count * 160);
    for i in 0..count {
        let (a, b, c) = ((i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
        writeln!(
            yaml,
            "- endpointSelector: {{matchLabels: {{app: tenant-{}}}}}\n  \
             labels: [\"k8s:rule=cidr-{i}\"]\n  \
             egress:\n  - toCIDR: [\"172.{}.{b}.{c}/32\"]",
            i % 100,
            16 + a,
        )
        .unwrap();
    }
    yaml
}

/// The same rules as [`cidr_rules`], as a compact JSON array.
fn cidr_rules_json(count: usize) -> String {
    let rules: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            let (a, b, c) = ((i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
            serde_json::json!({
                "endpointSelector": {"matchLabels": {"app": format!("tenant-{}", i % 100)}},
                "labels": [format!("k8s:rule=cidr-{i}")],
                "egress": [{"toCIDR": [format!("172.{}.{b}.{c}/32", 16 + a)]}],
            })
        })
        .collect();
    serde_json::to_string(&rules).unwrap()
}

fn write_policy(agent: &Agent, name: &str, text: &str) -> PathBuf {
    let path = agent.temp_dir().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn revision(agent: &Agent) -> u64 {
    agent.client().policy_get().unwrap().revision
}

#[test]
fn hundred_thousand_cidr_rules_import_in_one_request() {
    let agent = Agent::start_with(AgentOptions::default().with_unique_range()).unwrap();
    let yaml = cidr_rules(CIDR_RULES);
    let json = cidr_rules_json(CIDR_RULES);
    println!(
        "{CIDR_RULES} CIDR rules: {} bytes of YAML, {} bytes of JSON (limit {MAX_REQUEST_BODY_BYTES})",
        yaml.len(),
        json.len()
    );
    assert!(
        yaml.len() * 4 < MAX_REQUEST_BODY_BYTES,
        "the limit leaves headroom"
    );

    let before = revision(&agent);
    let path = write_policy(&agent, "cidr.yaml", &yaml);
    let started = Instant::now();
    let out = agent
        .cli_ok(&["policy", "import", path.to_str().unwrap()])
        .unwrap();
    println!("imported in {:?}: {}", started.elapsed(), out.trim());
    assert!(out.contains(&format!("Revision: {}", before + 1)), "{out}");

    let policy = agent.client().policy_get().unwrap();
    assert_eq!(policy.policy.matches("k8s:rule=cidr-").count(), CIDR_RULES);
}

#[test]
fn body_over_the_limit_is_refused_naming_the_limit_and_applies_nothing() {
    let agent = Agent::start_with(AgentOptions::default().with_unique_range()).unwrap();
    let before = revision(&agent);

    // Valid rules, just too many of them.
    let chunk = cidr_rules(10_000);
    let mut text = String::with_capacity(MAX_REQUEST_BODY_BYTES + chunk.len());
    while text.len() <= MAX_REQUEST_BODY_BYTES {
        text.push_str(&chunk);
    }
    let path = write_policy(&agent, "too-large.yaml", &text);
    drop(text);

    let out = agent.cli(&["policy", "import", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "import over the limit succeeded");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert!(stderr.contains("HTTP 413"), "{stderr}");
    assert!(stderr.contains("128 MiB"), "{stderr}");
    assert!(
        stderr.contains(&MAX_REQUEST_BODY_BYTES.to_string()),
        "{stderr}"
    );

    let after = agent.client().policy_get().unwrap();
    assert_eq!(after.revision, before, "nothing was applied");
    assert!(
        !after.policy.contains("k8s:rule=cidr-"),
        "nothing was applied"
    );
}
