//! `cni` owns cilium-cni, the CNI plugin (spec 1.0.0, plus 1.1's STATUS and
//! GC) that container runtimes call to attach a container to Cilium: it
//! plumbs the veth pair, gets the address from cilium-agent's IPAM and
//! registers the endpoint through the agent's REST API.
//!
//! Message handling (environment, network configuration, labels, results,
//! errors, version negotiation) is pure and lives in `env`, `config`,
//! `labels`, `request`, `result`, `error` and `version`; the kernel
//! (`plumbing`) and the agent (`agent`) are only touched from `commands`.
//! It must never write anything but the result or error JSON to stdout,
//! never touch BPF maps (the agent owns the datapath), and never leave a
//! half-made attachment behind when ADD fails.

pub mod agent;
pub mod commands;
pub mod config;
pub mod env;
pub mod error;
pub mod labels;
pub mod naming;
pub mod plumbing;
pub mod request;
pub mod result;
pub mod version;

pub use error::CniError;
pub use request::Request;

/// What the process prints on stdout and exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub stdout: String,
    pub exit_code: i32,
}

/// Handles one invocation: `get` reads the environment, `stdin` is the
/// network configuration. Failures become the spec's error JSON.
pub fn run(get: &dyn Fn(&str) -> Option<String>, stdin: &[u8]) -> Reply {
    let outcome = Request::parse(get, stdin)
        .and_then(|request| commands::execute(request, get(api::client::SOCKET_ENV).as_deref()));
    match outcome {
        Ok(stdout) => Reply {
            stdout,
            exit_code: 0,
        },
        Err(e) => {
            let cni_version =
                config::sniff_version(stdin).unwrap_or_else(|| version::DEFAULT_VERSION.into());
            Reply {
                stdout: e.to_json(&cni_version),
                exit_code: 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn version_succeeds_without_config() {
        let r = run(&env(&[("CNI_COMMAND", "VERSION")]), b"");
        assert_eq!(r.exit_code, 0);
        assert!(r.stdout.contains("supportedVersions"));
    }

    #[test]
    fn errors_are_json_tagged_with_the_callers_version() {
        let r = run(
            &env(&[("CNI_COMMAND", "ADD")]),
            br#"{"cniVersion":"0.4.0","name":"n"}"#,
        );
        assert_eq!(r.exit_code, 1);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["code"], error::code::INVALID_ENV);
    }

    #[test]
    fn unreachable_agent_on_status_is_code_50() {
        let r = run(
            &env(&[
                ("CNI_COMMAND", "STATUS"),
                ("CILIUM_SOCK", "/nonexistent/c.sock"),
            ]),
            br#"{"cniVersion":"1.1.0","name":"n"}"#,
        );
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["code"], error::code::PLUGIN_NOT_AVAILABLE);
        assert!(v["msg"].as_str().unwrap().contains("/nonexistent/c.sock"));
    }
}
