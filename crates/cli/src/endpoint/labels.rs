//! `cilium endpoint labels ID --add L --delete L`: read the endpoint's user
//! labels, apply the change locally, and send the complete new list.

use anyhow::{bail, Context, Result};
use api::{Client, LabelConfigurationSpec};

use crate::labels;
use crate::output::emit;

#[derive(clap::Args, Debug)]
pub struct LabelsArgs {
    /// Endpoint id, or a prefixed id such as container-id:XYZ
    id: String,
    /// Add/enable labels (repeatable or comma-separated)
    #[arg(short = 'a', long = "add", num_args = 1.., value_delimiter = ',')]
    add: Vec<String>,
    /// Delete/disable labels (repeatable or comma-separated)
    #[arg(short = 'd', long = "delete", num_args = 1.., value_delimiter = ',')]
    delete: Vec<String>,
}

pub fn run(client: &Client, args: &LabelsArgs) -> Result<()> {
    let ep = client
        .endpoint_get(&args.id)
        .with_context(|| format!("cannot get endpoint {}", args.id))?;
    let current = if ep.spec.label_configuration.user.is_empty() {
        ep.status.labels.realized.user.clone()
    } else {
        ep.spec.label_configuration.user.clone()
    };
    if args.add.is_empty() && args.delete.is_empty() {
        // Nothing to change: show what is configured, like Cilium does.
        let mut text = String::new();
        for l in labels::sorted(&current) {
            text.push_str(&l);
            text.push('\n');
        }
        emit(&text);
        return Ok(());
    }
    let user = apply(&current, &args.add, &args.delete)?;
    client
        .endpoint_labels_patch(&args.id, &LabelConfigurationSpec { user })
        .with_context(|| format!("cannot update labels of endpoint {}", args.id))?;
    Ok(())
}

/// The new user label list: `current` minus `delete`, plus `add` (no duplicates).
pub fn apply(current: &[String], add: &[String], delete: &[String]) -> Result<Vec<String>> {
    for l in add.iter().chain(delete) {
        if labels::split(l).1.is_empty() {
            bail!("invalid label {l:?}: the key is empty");
        }
    }
    let mut out: Vec<String> = current
        .iter()
        .filter(|l| !delete.iter().any(|d| labels::same(l, d)))
        .cloned()
        .collect();
    for l in add {
        if !out.iter().any(|o| labels::same(o, l)) {
            out.push(l.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn add_and_delete() {
        let cur = v(&["app=web", "tier=front"]);
        let out = apply(&cur, &v(&["role=api"]), &v(&["tier=front"])).unwrap();
        assert_eq!(out, v(&["app=web", "role=api"]));
    }

    #[test]
    fn adding_existing_label_is_a_no_op() {
        let cur = v(&["container:app=web"]);
        let out = apply(&cur, &v(&["app=web"]), &[]).unwrap();
        assert_eq!(out, cur);
    }

    #[test]
    fn labels_repeat_or_come_comma_separated() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: LabelsArgs,
        }
        let args = Cli::try_parse_from(["labels", "12", "-a", "app=web,tier=front", "-a", "x=y"])
            .unwrap()
            .args;
        assert_eq!(args.add, v(&["app=web", "tier=front", "x=y"]));
        let args = Cli::try_parse_from(["labels", "12", "--delete", "a=b", "c=d"])
            .unwrap()
            .args;
        assert_eq!(args.delete, v(&["a=b", "c=d"]));
    }

    #[test]
    fn empty_key_is_rejected() {
        let err = apply(&[], &v(&["=x"]), &[]).unwrap_err();
        assert!(err.to_string().contains("\"=x\""));
    }
}
