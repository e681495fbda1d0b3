//! `cilium-bench-policy`: big CIDR policies from `cilium policy import` to
//! enforced, against `iptables-restore` of the same addresses (issue 15).
//! For each size (default 1,000, 10,000 and 100,000 rules), each round
//! deletes the bench's rules and imports them again, as YAML and as JSON,
//! timing the CLI (the agent answers once the client pod's policy map and
//! the ipcache hold them: enforced), and reads the agent's log line that
//! times each stage of the import. The baseline loads one ACCEPT rule per
//! address into a fresh network namespace with iptables-restore.
//!
//! Usage: `cilium-bench-policy [--sizes N,N,...] [--rounds N] [--output
//! FILE]` (root). Everything it creates is released by Drop guards, also
//! on Ctrl-C; bench/policy/run.sh sweeps up after a SIGKILL.

#[path = "bench_policy/rules.rs"]
mod rules;

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use testbed::bench::entry::{self, step};
use testbed::bench::stats::{median, min_max};
use testbed::bench::{agent_under_test, machine, policy_import, signals, Flags, Machine};
use testbed::{unique, Agent, AgentOptions, NetNs, Pod};

/// The agent's pod range, away from the other benches' and the tests'.
const AGENT_RANGE: &str = "10.191.0.0/24";
const CHAIN: &str = "CBPOL";
const USAGE: &str = "cilium-bench-policy [--sizes N,N,...] [--rounds N] [--output FILE]";
/// The stages the agent's `policy import:` log line names, in order.
const STAGES: [&str; 7] = [
    "parse",
    "repository",
    "cidr identities",
    "regenerate",
    "ipcache",
    "persist",
    "total",
];

struct Args {
    sizes: Vec<usize>,
    rounds: usize,
    output: Option<PathBuf>,
}

fn parse_args(argv: std::iter::Skip<std::env::Args>) -> Result<Args> {
    let mut args = Args {
        sizes: vec![1_000, 10_000, 100_000],
        rounds: 5,
        output: None,
    };
    let mut flags = Flags::new(argv, USAGE);
    while let Some(flag) = flags.next_flag()? {
        match flag.name.as_str() {
            "--sizes" => {
                args.sizes = flag
                    .value
                    .split(',')
                    .map(|n| n.trim().parse().context("--sizes takes numbers"))
                    .collect::<Result<_>>()?
            }
            "--rounds" => args.rounds = flag.number()?,
            "--output" => args.output = Some(flag.path()),
            _ => return Err(flag.unknown()),
        }
    }
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    ensure!(
        args.sizes.iter().all(|&n| (1..=1_000_000).contains(&n)),
        "--sizes: 1 to 1,000,000 rules"
    );
    Ok(args)
}

fn main() -> ExitCode {
    entry::main(parse_args, run)
}

/// One size's measurements, in milliseconds.
#[derive(Default)]
struct Sample {
    yaml: Vec<f64>,
    json: Vec<f64>,
    iptables: Vec<f64>,
    /// Per stage of the YAML imports, as the agent logged them.
    stages: Vec<Vec<f64>>,
}

fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let machine = Machine::probe();
    step(started, "starting cilium-agent");
    // One policy map entry per rule: the pod's map must hold the largest set.
    let map_max = (2 * args.sizes.iter().max().copied().unwrap_or(0)).max(16_384);
    let agent = Agent::start_with(AgentOptions {
        ipv4_range: Some(AGENT_RANGE.to_string()),
        extra_args: vec!["--bpf-policy-map-max".into(), map_max.to_string()],
        ..Default::default()
    })?;
    let result = measure_all(args, &agent, started);
    let samples = agent_under_test::with_log_tail(&agent, result)?;
    let page = report(args, &machine, &samples);
    entry::publish(&page, args.output.as_deref())
}

fn measure_all(args: &Args, agent: &Agent, started: Instant) -> Result<Vec<(usize, Sample)>> {
    let client = Pod::create(agent, "bench-policy-client", &["k8s:app=client"])?;
    let (pid, n) = unique::next_pair();
    let baseline_ns = NetNs::create(&unique::netns_name(pid, n, "policy-iptables"))?;
    let mut out = Vec::new();
    for &size in &args.sizes {
        let dir = agent.temp_dir();
        let files = [
            write(dir, &format!("cidr-{size}.yaml"), &rules::yaml(size))?,
            write(dir, &format!("cidr-{size}.json"), &rules::json(size))?,
        ];
        let tables = write(
            dir,
            &format!("cidr-{size}.iptables"),
            &rules::iptables(size, CHAIN),
        )?;
        let mut sample = Sample {
            stages: vec![Vec::new(); STAGES.len()],
            ..Default::default()
        };
        for round in 1..=args.rounds {
            step(
                started,
                &format!("{size} rules, round {round}/{}", args.rounds),
            );
            for (format, file) in ["yaml", "json"].into_iter().zip(&files) {
                signals::check()?;
                delete_bench_rules(agent)?;
                let start = Instant::now();
                let revision = policy_import::import_file(agent, file)?;
                let took = ms(start.elapsed());
                client.wait_for_policy_revision(agent, revision, Duration::from_secs(1))?;
                if format == "yaml" {
                    sample.yaml.push(took);
                    for (stage, value) in logged_stages(agent, size, revision)?
                        .into_iter()
                        .enumerate()
                    {
                        sample.stages[stage].push(value);
                    }
                } else {
                    sample.json.push(took);
                }
            }
            sample
                .iptables
                .push(iptables_restore(&baseline_ns, &tables)?);
        }
        check_enforced(agent, &client, size)?;
        delete_bench_rules(agent)?;
        out.push((size, sample));
    }
    Ok(out)
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn delete_bench_rules(agent: &Agent) -> Result<()> {
    match agent
        .client()
        .policy_delete(&[rules::RULE_LABEL.to_string()])
    {
        Ok(_) => Ok(()),
        // Nothing to delete on the first round.
        Err(e) if e.to_string().contains("no policy rule carries") => Ok(()),
        Err(e) => Err(e).context("deleting the bench's rules"),
    }
}

/// The stage times of the import that made `revision`, from the agent's log.
fn logged_stages(agent: &Agent, size: usize, revision: u64) -> Result<Vec<f64>> {
    let log = std::fs::read_to_string(agent.log_path())?;
    let wanted = format!("policy import: {size} rules, revision {revision}: ");
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.split_once(&wanted).map(|(_, rest)| rest))
        .with_context(|| format!("no `{wanted}` line in the agent's log"))?;
    STAGES
        .iter()
        .map(|stage| {
            let value = line
                .split(", ")
                .find_map(|part| {
                    part.trim_end_matches('"')
                        .strip_prefix(&format!("{stage} "))
                })
                .and_then(|v| v.strip_suffix(" ms"))
                .and_then(|v| v.parse().ok());
            value.with_context(|| format!("no {stage:?} time in {line:?}"))
        })
        .collect()
}

/// Loads the baseline's rules into `ns` (replacing its filter table); ms.
fn iptables_restore(ns: &NetNs, file: &Path) -> Result<f64> {
    let input = std::fs::File::open(file)?;
    let net = format!("--net={}", ns.path().display());
    let start = Instant::now();
    let status = Command::new("nsenter")
        .args([net.as_str(), "--", "iptables-restore"])
        .stdin(input)
        .stdout(Stdio::null())
        .status()
        .context("running iptables-restore")?;
    let took = ms(start.elapsed());
    if !status.success() {
        bail!("iptables-restore failed ({status})");
    }
    Ok(took)
}

/// The last import holds: the ipcache has every prefix, and the client's
/// policy map an entry per rule.
fn check_enforced(agent: &Agent, client: &Pod, size: usize) -> Result<()> {
    let ipcache = agent.cli_ok(&["bpf", "ipcache", "list"])?;
    let prefixes = ipcache.lines().filter(|l| l.contains("172.")).count();
    ensure!(
        prefixes >= size,
        "the ipcache holds {prefixes} of the {size} prefixes"
    );
    let id = client.endpoint_id().to_string();
    let map = agent.cli_ok(&["bpf", "policy", "get", &id])?;
    let cidr_entries = map.lines().filter(|l| l.contains("cidr:172.")).count();
    ensure!(
        cidr_entries >= size,
        "the client's policy map has {cidr_entries} CIDR entries for {size} rules"
    );
    Ok(())
}

fn report(args: &Args, machine: &Machine, samples: &[(usize, Sample)]) -> String {
    let mut page = format!(
        "# CIDR policy import → enforced, {}\n\n\
         {} rounds per size. Each round deletes the bench's rules, then times \
         `cilium policy import` of N CIDR rules (half `toCIDR`, half `fromCIDR`, one /32 \
         each, all selecting one pod) as YAML and as JSON: the agent answers once the \
         pod's policy map and the ipcache hold them. Baseline: `iptables-restore` of one \
         ACCEPT rule per address into a fresh network namespace. The agent runs with \
         `--bpf-policy-map-max` twice the largest size (the pod's map holds an entry per \
         rule; Cilium's default is 16,384). Medians in ms (min–max); ratio = ours / \
         iptables-restore.\n\n\
         | rules | YAML import | JSON import | iptables-restore | YAML ratio | JSON ratio | target |\n\
         |---:|---:|---:|---:|---:|---:|---|\n",
        machine.date, args.rounds
    );
    for (size, s) in samples {
        let target = match size {
            10_000 => "< 300 ms",
            100_000 => "< 3,000 ms",
            _ => "",
        };
        let _ = writeln!(
            page,
            "| {size} | {} | {} | {} | {:.2} | {:.2} | {target} |",
            spread(&s.yaml),
            spread(&s.json),
            spread(&s.iptables),
            median(&s.yaml) / median(&s.iptables),
            median(&s.json) / median(&s.iptables),
        );
    }
    page.push_str("\n## Where the time goes (YAML imports, agent's log, median ms)\n\n| rules |");
    for stage in STAGES {
        let _ = write!(page, " {stage} |");
    }
    page.push_str("\n|---:|");
    page.push_str(&"---:|".repeat(STAGES.len()));
    page.push('\n');
    for (size, s) in samples {
        let _ = write!(page, "| {size} |");
        for values in &s.stages {
            let _ = write!(page, " {:.1} |", median(values));
        }
        page.push('\n');
    }
    page.push_str(
        "\nThe CLI's time also holds sending the file, the agent's answer (the imported \
         rules as JSON) and the CLI's start-up.\n\n## Machine\n\n",
    );
    let tools = [machine::tool_version("iptables-restore", &["--version"])];
    for (fact, value) in machine.facts(&tools) {
        let _ = writeln!(page, "- {fact}: {value}");
    }
    let _ = writeln!(page, "- load average at end: {}", machine::load_average());
    page
}

fn spread(values: &[f64]) -> String {
    let (min, max) = min_max(values);
    format!("{:.0} ({:.0}–{:.0})", median(values), min, max)
}
