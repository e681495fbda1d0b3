//! `cilium kvstore set KEY VALUE` (Cilium's `--key`/`--value` flags work too).

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use api::Client;

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// Key
    #[arg(long = "key", value_name = "KEY")]
    key_flag: Option<String>,
    /// Value
    #[arg(long = "value", value_name = "VALUE")]
    value_flag: Option<String>,
    /// Key (instead of --key)
    key: Option<String>,
    /// Value (instead of --value)
    value: Option<String>,
}

pub fn run(client: &Client, args: &SetArgs) -> Result<ExitCode> {
    let (key, value) = key_value(args)?;
    client
        .kvstore_set(&key, &value)
        .with_context(|| format!("cannot set key {key:?} in the kvstore"))?;
    Ok(ExitCode::SUCCESS)
}

fn key_value(args: &SetArgs) -> Result<(String, String)> {
    let key = args.key_flag.clone().or(args.key.clone());
    // With --key, the first positional argument is the value.
    let value = args.value_flag.clone().or(if args.key_flag.is_some() {
        args.key.clone()
    } else {
        args.value.clone()
    });
    match (key, value) {
        (Some(k), _) if k.is_empty() => bail!("the key must not be empty"),
        (Some(k), Some(v)) => Ok((k, v)),
        (None, _) => bail!("missing the key: cilium kvstore set KEY VALUE"),
        (Some(k), None) => bail!("missing the value for key {k:?}: cilium kvstore set KEY VALUE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(key_flag: Option<&str>, value_flag: Option<&str>, pos: &[&str]) -> SetArgs {
        SetArgs {
            key_flag: key_flag.map(String::from),
            value_flag: value_flag.map(String::from),
            key: pos.first().map(|s| s.to_string()),
            value: pos.get(1).map(|s| s.to_string()),
        }
    }

    #[test]
    fn positional_and_flag_forms() {
        assert_eq!(
            key_value(&args(None, None, &["k", "v"])).unwrap(),
            ("k".into(), "v".into())
        );
        assert_eq!(
            key_value(&args(Some("k"), Some("v"), &[])).unwrap(),
            ("k".into(), "v".into())
        );
        assert_eq!(
            key_value(&args(Some("k"), None, &["v"])).unwrap(),
            ("k".into(), "v".into())
        );
        let err = key_value(&args(None, None, &["k"])).unwrap_err();
        assert!(err.to_string().contains("missing the value"), "{err}");
        assert!(key_value(&args(None, None, &[])).is_err());
    }
}
