//! Facts about the machine the numbers come from, for the results pages:
//! probed once at the start of a run.

use crate::cmd;

#[derive(Debug, Clone)]
pub struct Machine {
    /// `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    pub cpu_model: String,
    /// CPUs this process may run on (nproc).
    pub cpus: usize,
    /// The first line of /proc/meminfo (`MemTotal: … kB`).
    pub memory: String,
    pub kernel: String,
    /// /proc/loadavg as it reads.
    pub load_average: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpu_model = read_trimmed("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".into(), |m| m.trim().to_string());
        Machine {
            date: tool_version("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory: read_trimmed("/proc/meminfo")
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            load_average: load_average(),
        }
    }

    /// The 1, 5 and 15 minute load averages at the start.
    pub fn load_1_5_15(&self) -> String {
        self.load_average
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The facts as a `## Machine` list, `tools` being the versions of the
    /// programs the bench measures with.
    pub fn facts(&self, tools: &[String]) -> Vec<(String, String)> {
        vec![
            ("date".into(), self.date.clone()),
            (
                "CPU".into(),
                format!("{} × {} (nproc)", self.cpu_model, self.cpus),
            ),
            ("memory".into(), self.memory.clone()),
            ("kernel".into(), self.kernel.clone()),
            ("tools".into(), tools.join("; ")),
            ("load average at start".into(), self.load_average.clone()),
        ]
    }
}

/// /proc/loadavg now (for the end of a run).
pub fn load_average() -> String {
    read_trimmed("/proc/loadavg")
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The first non-empty line a tool prints about itself (stdout, else
/// stderr), without colour codes; `PROGRAM: not found` if it cannot run.
pub fn tool_version(program: &str, args: &[&str]) -> String {
    cmd::output(program, args)
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines()
                .map(strip_ansi)
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .unwrap_or_else(|_| format!("{program}: not found"))
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the end of the escape sequence (a letter).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colour_codes() {
        assert_eq!(
            strip_ansi("\u{1b}[2;35m== version #3.7 ==\u{1b}[0m"),
            "== version #3.7 =="
        );
    }

    #[test]
    fn a_missing_tool_says_so() {
        assert_eq!(
            tool_version("cilium-no-such-tool", &["--version"]),
            "cilium-no-such-tool: not found"
        );
    }

    #[test]
    fn load_averages_are_the_first_three_fields() {
        let m = Machine {
            load_average: "0.52 0.58 0.59 1/467 12345".into(),
            ..Machine::probe()
        };
        assert_eq!(m.load_1_5_15(), "0.52 0.58 0.59");
        assert_eq!(m.facts(&["wrk 4.2".into()])[4].1, "wrk 4.2");
    }
}
