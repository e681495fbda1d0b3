//! CNI errors: a spec error code, a message and details a user can act on,
//! printed as the spec's error JSON on stdout.

use serde::Serialize;

/// Error codes from the CNI specification (section "Error").
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist; the runtime need not clean up.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure, e.g. reading stdin.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content (stdin is not the JSON it should be).
    pub const DECODING_FAILURE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// Try again later: a transient condition (the agent is unreachable).
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot serve ADD requests now.
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;

    // 100 and above are the plugin's own.
    /// Creating or configuring the interfaces failed.
    pub const PLUMBING_FAILED: u32 = 100;
    /// cilium-agent refused a request.
    pub const AGENT_REFUSED: u32 = 101;
}

/// A failed command, as the runtime will see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    pub code: u32,
    /// A short summary.
    pub msg: String,
    /// What exactly failed and what to do about it.
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    pub fn invalid_env(msg: impl Into<String>) -> CniError {
        CniError::new(code::INVALID_ENV, msg, "")
    }

    pub fn invalid_config(msg: impl Into<String>) -> CniError {
        CniError::new(code::INVALID_NETWORK_CONFIG, msg, "")
    }

    pub fn plumbing(msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError::new(code::PLUMBING_FAILED, msg, details)
    }

    /// Prefixes the message with what was being done.
    pub fn context(mut self, what: &str) -> CniError {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    /// The spec's error object, tagged with `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_string(&Wire {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        })
        .expect("strings and integers always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_the_spec_fields() {
        let e = CniError::new(code::TRY_AGAIN_LATER, "agent down", "start it");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["code"], 11);
        assert_eq!(v["msg"], "agent down");
        assert_eq!(v["details"], "start it");
    }

    #[test]
    fn empty_details_are_left_out() {
        let v: serde_json::Value =
            serde_json::from_str(&CniError::invalid_env("x").to_json("0.4.0")).unwrap();
        assert!(v.get("details").is_none());
        assert_eq!(v["code"], 4);
    }

    #[test]
    fn context_prefixes_the_message() {
        let e = CniError::invalid_config("bad").context("ADD");
        assert_eq!(e.msg, "ADD: bad");
        assert_eq!(e.to_string(), "ADD: bad");
    }
}
