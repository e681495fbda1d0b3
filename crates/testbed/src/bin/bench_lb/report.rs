//! The results as Markdown: machine, method, the side-by-side tables and
//! the targets with their ratios.

use std::fmt::Write as _;
use std::time::Duration;

use testbed::bench::stats::{min_max, quantile};

use crate::load::Run;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variant {
    /// Cilium pod → VIP, translated by our tc program.
    Ebpf,
    /// Plain pod → VIP, translated by the iptables chains.
    Iptables,
    /// Cilium pod → server IP: our datapath without a service.
    DirectCilium,
    /// Plain pod → server IP: no BPF, no NAT.
    DirectPlain,
}

pub const VARIANTS: [Variant; 4] = [
    Variant::Ebpf,
    Variant::Iptables,
    Variant::DirectCilium,
    Variant::DirectPlain,
];

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Ebpf => "eBPF LB (cilium-rs)",
            Variant::Iptables => "iptables DNAT (kube-proxy style)",
            Variant::DirectCilium => "no service, cilium pod (reference)",
            Variant::DirectPlain => "no service, plain pod (reference)",
        }
    }
}

#[derive(Debug, Default)]
pub struct SizeResult {
    pub size: u16,
    /// PUTs from zero to this size, summed over the steps.
    pub ours_program: Duration,
    pub iptables_program: Duration,
    pub iptables_rules: usize,
    pub ours_add_one: Vec<Duration>,
    pub iptables_add_commands: Vec<Duration>,
    pub iptables_add_restore: Vec<Duration>,
    pub runs: Vec<(Variant, Run)>,
    pub iptables_last_service_packets: u64,
}

impl SizeResult {
    fn runs_of(&self, v: Variant) -> impl Iterator<Item = &Run> {
        self.runs
            .iter()
            .filter(move |(x, _)| *x == v)
            .map(|(_, r)| r)
    }

    /// Median connection rate over the rounds.
    pub fn rate(&self, v: Variant) -> f64 {
        let rates: Vec<f64> = self.runs_of(v).map(Run::rate).collect();
        quantile(&rates, 0.5)
    }

    /// Median over rounds of the eBPF rate divided by the rate of the
    /// no-service reference measured in the same round: machine-load drift
    /// between sizes cancels out.
    pub fn normalized_ebpf(&self) -> f64 {
        let ebpf: Vec<f64> = self.runs_of(Variant::Ebpf).map(Run::rate).collect();
        let reference: Vec<f64> = self.runs_of(Variant::DirectCilium).map(Run::rate).collect();
        let ratios: Vec<f64> = ebpf
            .iter()
            .zip(&reference)
            .map(|(e, r)| e / r.max(1e-9))
            .collect();
        quantile(&ratios, 0.5)
    }

    fn rate_range(&self, v: Variant) -> (f64, f64) {
        let rates: Vec<f64> = self.runs_of(v).map(Run::rate).collect();
        min_max(&rates)
    }

    fn latency(&self, v: Variant, q: f64) -> f64 {
        let all: Vec<f64> = self
            .runs_of(v)
            .flat_map(|r| r.latencies_us.iter().copied())
            .collect();
        quantile(&all, q)
    }

    fn errors(&self, v: Variant) -> usize {
        self.runs_of(v).map(|r| r.errors).sum()
    }
}

pub fn median(d: &[Duration]) -> Duration {
    let v: Vec<f64> = d.iter().map(Duration::as_secs_f64).collect();
    Duration::from_secs_f64(quantile(&v, 0.5).max(0.0))
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

pub struct Header {
    pub machine: Vec<(String, String)>,
    pub rounds: usize,
    pub seconds: f64,
    pub total: Duration,
    pub notes: Vec<String>,
}

pub fn render(h: &Header, results: &[SizeResult]) -> String {
    let mut s = String::from("# Service load balancing: eBPF vs kube-proxy-style iptables\n\n");
    s.push_str("Produced by `bench/lb/run.sh` (`cilium-bench-lb`).\n\n## Machine\n\n");
    for (k, v) in &h.machine {
        let _ = writeln!(s, "- {k}: {v}");
    }
    let _ = write!(
        s,
        "\n## Method\n\n\
         S services (VIP 10.96.0.0+id, TCP port 80, two backends each) are programmed into both \
         load balancers; the last one (id S) points at a server pod's ports 8080 and 8081, the \
         others at unused addresses. A client opens connection after connection to the last \
         service's VIP (connect, one request/response, close with RST), single-threaded, for \
         {:.1} s per round; {} rounds per size, the variants interleaved round by round (order \
         rotated). Latency is connect + request + response of one such connection, pooled over \
         the rounds. Connection rate is the median over the rounds (min–max in brackets).\n\n\
         - **eBPF LB**: a pod attached to cilium-agent; its tc program translates VIP → backend \
         (service map lookup, backend choice remembered in conntrack, reverse NAT on replies).\n\
         - **iptables**: a plain pod (no BPF on its veth, so the agent's service maps never see \
         its traffic) whose packets enter the nat table's PREROUTING → `CBLB-SERVICES` (one rule \
         per service, the measured one last) → per-service chain (`statistic --mode random`) → \
         endpoint chain (DNAT), loaded with `iptables-restore`, as kube-proxy does. The jump is \
         in place only during this variant's rounds.\n\
         - References without a service (client → server IP): the same two client pods.\n\n\
         The server is a plain pod, so both variants share it and the host's forwarding path.\n\
         Programming: ours = one `PUT /v1/service/{{id}}` per service (sequential, summed from 0 \
         to S); iptables = one `iptables-restore --noflush` of all S services from empty. Add one \
         more at S: ours = one PUT (median of repetitions); iptables = the `iptables -N/-A` \
         commands of one service, and one `iptables-restore --noflush` transaction of it.\n\n",
        h.seconds, h.rounds
    );
    s.push_str("## Connections to the last service\n\n");
    s.push_str("| S | variant | conn/s (median, min–max) | latency p50 | latency p99 | failed |\n");
    s.push_str("|---:|---|---:|---:|---:|---:|\n");
    for r in results {
        for v in VARIANTS {
            if r.runs_of(v).next().is_none() {
                continue;
            }
            let (lo, hi) = r.rate_range(v);
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} ({:.0}–{:.0}) | {:.0} µs | {:.0} µs | {} |",
                r.size,
                v.name(),
                r.rate(v),
                lo,
                hi,
                r.latency(v, 0.5),
                r.latency(v, 0.99),
                r.errors(v)
            );
        }
    }
    s.push_str("\n## Programming services\n\n");
    s.push_str("| S | ours: S PUTs | iptables: restore of S (rules) | add one, ours (PUT) | add one, iptables commands | add one, iptables-restore | add-one ratio (iptables best / ours) |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in results {
        let ours = median(&r.ours_add_one);
        if r.iptables_add_restore.is_empty() {
            let _ = writeln!(
                s,
                "| {} | {} | not run | {} | not run | not run | — |",
                r.size,
                ms(r.ours_program),
                ms(ours)
            );
            continue;
        }
        let cmds = median(&r.iptables_add_commands);
        let rest = median(&r.iptables_add_restore);
        let _ = writeln!(
            s,
            "| {} | {} | {} ({}) | {} | {} | {} | {:.0}× |",
            r.size,
            ms(r.ours_program),
            ms(r.iptables_program),
            r.iptables_rules,
            ms(ours),
            ms(cmds),
            ms(rest),
            cmds.min(rest).as_secs_f64() / ours.as_secs_f64().max(1e-9)
        );
    }
    s.push_str("\n## Targets (issue 7)\n\n");
    s.push_str(&targets(results));
    if !h.notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for n in &h.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    let _ = writeln!(s, "\nTotal run time: {:.0} s.", h.total.as_secs_f64());
    s
}

fn targets(results: &[SizeResult]) -> String {
    let find = |size: u16| results.iter().find(|r| r.size == size);
    let verdict = |ok: bool| if ok { "**met**" } else { "**not met**" };
    let mut s = String::new();
    match (find(10), find(10_000)) {
        (Some(small), Some(big)) => {
            let drop = 1.0 - big.rate(Variant::Ebpf) / small.rate(Variant::Ebpf);
            let (n_small, n_big) = (small.normalized_ebpf(), big.normalized_ebpf());
            let n_drop = 1.0 - n_big / n_small;
            let _ = writeln!(
                s,
                "- Connection rate flat from S=10 to S=10,000 (≤ 5 % drop): {:.0} → {:.0} conn/s, {:+.1} %; \
                 relative to the same rounds' no-service cilium-pod reference: {:.2} → {:.2}, {:+.1} % — {}",
                small.rate(Variant::Ebpf),
                big.rate(Variant::Ebpf),
                -drop * 100.0,
                n_small,
                n_big,
                -n_drop * 100.0,
                verdict(drop <= 0.05 || n_drop <= 0.05)
            );
            let ratio = big.rate(Variant::Ebpf) / big.rate(Variant::Iptables);
            let _ = writeln!(
                s,
                "- ≥ 2× iptables at S=10,000: {:.0} vs {:.0} conn/s = {ratio:.2}× — {}",
                big.rate(Variant::Ebpf),
                big.rate(Variant::Iptables),
                verdict(ratio >= 2.0)
            );
            let ours = median(&big.ours_add_one);
            let ipt = median(&big.iptables_add_commands).min(median(&big.iptables_add_restore));
            let ratio = ipt.as_secs_f64() / ours.as_secs_f64().max(1e-9);
            let _ = writeln!(
                s,
                "- Adding one service at S=10,000 ≥ 100× faster than iptables: {} vs {} (the faster \
                 incremental iptables way) = {ratio:.0}× — {}; against a full kube-proxy-style \
                 re-sync (restoring all services, {} at this S) it is {:.0}×",
                ms(ours),
                ms(ipt),
                verdict(ratio >= 100.0),
                ms(big.iptables_program),
                big.iptables_program.as_secs_f64() / ours.as_secs_f64().max(1e-9)
            );
        }
        _ => s.push_str("- S=10 and S=10,000 were not both measured: no verdict.\n"),
    }
    s
}
