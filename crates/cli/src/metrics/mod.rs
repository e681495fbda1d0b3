//! `cilium metrics list`: the agent's metrics, one sample per line.

use anyhow::{Context, Result};
use api::{Client, MetricSample};
use clap::Subcommand;

use crate::output::{emit, to_json, OutputFormat};
use crate::table::Table;

#[derive(Subcommand, Debug)]
pub enum MetricsCommand {
    /// List all metrics
    List(ListArgs),
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only metrics whose name contains this text
    #[arg(short = 'p', long = "match-pattern")]
    pattern: Option<String>,
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, cmd: MetricsCommand) -> Result<()> {
    let MetricsCommand::List(args) = cmd;
    let mut samples = client.metrics_list().context("cannot get metrics")?;
    if let Some(p) = &args.pattern {
        samples.retain(|s| s.name.contains(p.as_str()));
    }
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&samples)?),
        None => emit(&render(&samples)),
    }
    Ok(())
}

/// Cilium's table: metric, labels as `k=v` pairs, value.
pub fn render(samples: &[MetricSample]) -> String {
    let mut t = Table::new();
    t.row(["Metric", "Labels", "Value"]);
    for s in samples {
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        t.row([s.name.clone(), labels.join(" "), format!("{:.6}", s.value)]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_table() {
        let s = MetricSample {
            name: "cilium_drop_count_total".into(),
            labels: [
                ("direction".to_string(), "INGRESS".to_string()),
                ("reason".to_string(), "Policy denied".to_string()),
            ]
            .into_iter()
            .collect(),
            value: 3.0,
        };
        let text = render(&[s]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("Metric"));
        assert_eq!(
            lines[1],
            "cilium_drop_count_total   direction=\"INGRESS\" reason=\"Policy denied\"   3.000000"
        );
    }
}
