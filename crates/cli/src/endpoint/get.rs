//! `cilium endpoint get {ID | -l LABELS}`: endpoints as JSON, in a list
//! like Cilium.

use anyhow::{bail, Context, Result};
use api::{Client, Endpoint};

use crate::labels;
use crate::output::{emit, to_json, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Endpoint id, or a prefixed id such as container-id:XYZ
    #[arg(required_unless_present = "labels", conflicts_with = "labels")]
    id: Option<String>,
    /// Every endpoint whose identity carries all of these labels
    #[arg(short = 'l', long = "labels", value_delimiter = ',')]
    labels: Vec<String>,
    /// Output format (the output is JSON either way)
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, args: &GetArgs) -> Result<()> {
    let endpoints = match &args.id {
        Some(id) => vec![client
            .endpoint_get(id)
            .with_context(|| format!("cannot get endpoint {id}"))?],
        None => {
            let all = client.endpoint_list().context("cannot list endpoints")?;
            let found = with_labels(all, &args.labels);
            if found.is_empty() {
                bail!("no endpoint has the labels {}", args.labels.join(","));
            }
            found
        }
    };
    emit(&to_json(&endpoints)?);
    Ok(())
}

/// The endpoints whose identity carries every label of `wanted`, by id.
fn with_labels(mut endpoints: Vec<Endpoint>, wanted: &[String]) -> Vec<Endpoint> {
    endpoints.retain(|ep| {
        let have = &ep.status.identity.labels;
        wanted
            .iter()
            .all(|w| have.iter().any(|l| labels::same(l, w)))
    });
    endpoints.sort_by_key(|ep| ep.id);
    endpoints
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GetArgs,
    }

    fn parse(args: &[&str]) -> Result<GetArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("get").chain(args.iter().copied())).map(|c| c.args)
    }

    fn endpoint(id: u16, labels: &[&str]) -> Endpoint {
        let mut ep = Endpoint {
            id,
            ..Default::default()
        };
        ep.status.identity.labels = labels.iter().map(|l| l.to_string()).collect();
        ep
    }

    #[test]
    fn an_id_or_labels() {
        assert_eq!(parse(&["12"]).unwrap().id.as_deref(), Some("12"));
        let by_labels = parse(&["-l", "k8s:app=web,env=prod"]).unwrap();
        assert_eq!(by_labels.labels, ["k8s:app=web", "env=prod"]);
        assert!(parse(&[]).is_err());
        assert!(parse(&["12", "-l", "app=web"]).is_err());
    }

    #[test]
    fn labels_select_endpoints_carrying_all_of_them() {
        let eps = vec![
            endpoint(7, &["k8s:app=web", "k8s:env=prod"]),
            endpoint(3, &["k8s:app=web", "k8s:env=dev"]),
            endpoint(5, &["k8s:app=db", "k8s:env=prod"]),
        ];
        let ids = |wanted: &[&str]| -> Vec<u16> {
            let wanted: Vec<String> = wanted.iter().map(|w| w.to_string()).collect();
            with_labels(eps.clone(), &wanted)
                .iter()
                .map(|e| e.id)
                .collect()
        };
        assert_eq!(ids(&["app=web"]), [3, 7]);
        assert_eq!(ids(&["k8s:app=web", "env=prod"]), [7]);
        assert!(ids(&["app=cache"]).is_empty());
    }
}
