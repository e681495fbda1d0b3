//! CNI versions this plugin speaks, and the `VERSION` answer.

use serde::Serialize;

use crate::error::{code, CniError};

/// Versions whose configuration we accept and whose result format we emit.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// What we answer with when the caller named no version.
pub const DEFAULT_VERSION: &str = "1.0.0";

/// A version as `(major, minor, patch)`, for ordering.
pub fn parse(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}

/// Fails with code 1 unless `version` is one we speak.
pub fn require_supported(version: &str) -> Result<(), CniError> {
    if SUPPORTED_VERSIONS.contains(&version) {
        return Ok(());
    }
    Err(CniError::new(
        code::INCOMPATIBLE_VERSION,
        format!("cniVersion {version:?} is not supported"),
        format!(
            "cilium-cni supports {}; set \"cniVersion\" in the network configuration to one of them",
            SUPPORTED_VERSIONS.join(", ")
        ),
    ))
}

/// True if `version` is at least `(major, minor)`.
pub fn at_least(version: &str, major: u32, minor: u32) -> bool {
    parse(version).is_some_and(|(a, b, _)| (a, b) >= (major, minor))
}

/// The `VERSION` command's answer. `requested` is the `cniVersion` from
/// stdin, if any; the answer carries it back when we speak it.
pub fn version_info(requested: Option<&str>) -> String {
    #[derive(Serialize)]
    struct VersionInfo<'a> {
        #[serde(rename = "cniVersion")]
        cni_version: &'a str,
        #[serde(rename = "supportedVersions")]
        supported_versions: &'a [&'a str],
    }
    let cni_version = requested
        .filter(|v| SUPPORTED_VERSIONS.contains(v))
        .unwrap_or(DEFAULT_VERSION);
    serde_json::to_string(&VersionInfo {
        cni_version,
        supported_versions: SUPPORTED_VERSIONS,
    })
    .expect("strings always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_versions() {
        assert_eq!(parse("1.0.0"), Some((1, 0, 0)));
        assert_eq!(parse("0.3.1"), Some((0, 3, 1)));
        assert_eq!(parse("1.0"), None);
        assert_eq!(parse("1.0.0.0"), None);
        assert_eq!(parse("x.y.z"), None);
        assert!(at_least("1.1.0", 1, 1));
        assert!(!at_least("1.0.0", 1, 1));
        assert!(at_least("1.0.0", 0, 4));
    }

    #[test]
    fn unknown_versions_are_code_1() {
        assert!(require_supported("1.0.0").is_ok());
        let e = require_supported("9.9.9").unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        assert!(e.details.contains("0.4.0"), "{e:?}");
    }

    #[test]
    fn version_answer_lists_everything_and_echoes_known_versions() {
        let v: serde_json::Value = serde_json::from_str(&version_info(Some("0.4.0"))).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 5);
        let v: serde_json::Value = serde_json::from_str(&version_info(Some("7.0.0"))).unwrap();
        assert_eq!(v["cniVersion"], DEFAULT_VERSION);
        let v: serde_json::Value = serde_json::from_str(&version_info(None)).unwrap();
        assert_eq!(v["cniVersion"], DEFAULT_VERSION);
    }
}
