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
}

pub fn run(client: &Client, args: &StatusArgs) -> Result<ExitCode> {
    let status = client.healthz().context("cannot get agent status")?;
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&status)?),
        None => emit(&render(&status)),
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
    t.row(["Cilium:", &s.cilium.state, &s.cilium.msg]);
    t.row(["IPAM:".to_string(), ipam_line(s)]);
    t.row([
        "Policy:".to_string(),
        format!("revision {}, {} rules", s.policy.revision, s.policy.rules),
    ]);
    t.row(["Endpoints:".to_string(), s.endpoints.to_string()]);
    t.render()
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
            },
            policy: PolicyStatus {
                revision: 4,
                rules: 2,
            },
            endpoints: 2,
        };
        let text = render(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "KVStore:     Ok   embedded");
        assert_eq!(lines[1], "Cilium:      Ok   1.0 (cilium-rs)");
        assert_eq!(
            lines[2],
            "IPAM:        IPv4: 3/65534 allocated from 10.200.0.0/16"
        );
        assert_eq!(lines[3], "Policy:      revision 4, 2 rules");
        assert_eq!(lines[4], "Endpoints:   2");
    }
}
