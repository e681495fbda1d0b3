//! Facts about the machine the numbers come from, for the results page.

use testbed::cmd;

pub fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// First non-empty line a tool prints about itself (stdout or stderr).
fn tool_version(program: &str, args: &[&str]) -> String {
    cmd::output(program, args)
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_else(|_| format!("{program}: not found"))
}

pub fn facts() -> Vec<(String, String)> {
    let cpu = read_trimmed("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or_else(|| "unknown".into(), |m| m.trim().to_string());
    vec![
        (
            "date".into(),
            tool_version("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        ),
        (
            "CPU".into(),
            format!(
                "{cpu} × {} (nproc)",
                std::thread::available_parallelism().map_or(0, |n| n.get())
            ),
        ),
        (
            "memory".into(),
            read_trimmed("/proc/meminfo")
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        ("kernel".into(), read_trimmed("/proc/sys/kernel/osrelease")),
        ("tools".into(), tool_version("iperf3", &["--version"])),
        (
            "load average at start".into(),
            read_trimmed("/proc/loadavg"),
        ),
    ]
}
