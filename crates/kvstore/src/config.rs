//! `--kvstore KIND --kvstore-opt key=value[,…]` as Cilium spells them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Backend;
use crate::embedded::Embedded;
use crate::error::{ConfigError, Result};
use crate::etcd::Etcd;

/// Default bound on one etcd request (and on connecting).
pub const DEFAULT_ETCD_TIMEOUT: Duration = Duration::from_secs(5);

const ETCD_OPTIONS: &str = "etcd.endpoints, etcd.operationTimeout";

/// Which store the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvstoreConfig {
    /// In-process store: a single node with no etcd.
    Embedded,
    Etcd(EtcdConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `http://host:port` URLs of the members.
    pub endpoints: Vec<String>,
    /// Bound on one request; also the connect timeout.
    pub timeout: Duration,
}

impl KvstoreConfig {
    /// Parses `--kvstore` (`""`/`embedded`/`etcd`) and the `--kvstore-opt` values.
    ///
    /// Each option is `key=value`; one flag may carry several separated by commas, and a
    /// comma-separated piece without `=` continues the previous value, so
    /// `etcd.endpoints=http://a:2379,http://b:2379` lists two endpoints.
    pub fn from_flags<S: AsRef<str>>(
        kind: &str,
        opts: &[S],
    ) -> std::result::Result<Self, ConfigError> {
        let options = split_options(opts)?;
        match kind {
            "" | "embedded" | "local" => {
                if let Some((key, _)) = options.first() {
                    return Err(ConfigError::UnknownOption {
                        kind: "embedded",
                        key: key.clone(),
                        known: "(none)",
                    });
                }
                Ok(KvstoreConfig::Embedded)
            }
            "etcd" => etcd_config(options).map(KvstoreConfig::Etcd),
            other => Err(ConfigError::UnknownKind(other.to_string())),
        }
    }

    /// `"embedded"` or `"etcd"`.
    pub fn kind(&self) -> &'static str {
        match self {
            KvstoreConfig::Embedded => "embedded",
            KvstoreConfig::Etcd(_) => "etcd",
        }
    }

    /// Opens the store. The embedded store persists its lease-less keys in
    /// `embedded_dir/kvstore.json` when a directory is given. Connecting to etcd does
    /// not wait for it to be up. Must run inside a tokio runtime.
    pub async fn connect(&self, embedded_dir: Option<&Path>) -> Result<Arc<dyn Backend>> {
        match self {
            KvstoreConfig::Embedded => match embedded_dir {
                Some(dir) => Ok(Arc::new(Embedded::persistent(dir)?)),
                None => Ok(Arc::new(Embedded::new())),
            },
            KvstoreConfig::Etcd(config) => Ok(Arc::new(Etcd::connect(config).await?)),
        }
    }
}

fn split_options<S: AsRef<str>>(
    opts: &[S],
) -> std::result::Result<Vec<(String, String)>, ConfigError> {
    let mut options: Vec<(String, String)> = Vec::new();
    for opt in opts {
        for piece in opt.as_ref().split(',').filter(|piece| !piece.is_empty()) {
            match piece.split_once('=') {
                Some((key, value)) if !key.is_empty() => {
                    options.push((key.trim().to_string(), value.trim().to_string()))
                }
                Some(_) => return Err(ConfigError::Malformed(piece.to_string())),
                None => match options.last_mut() {
                    Some((_, value)) => {
                        value.push(',');
                        value.push_str(piece.trim());
                    }
                    None => return Err(ConfigError::Malformed(piece.to_string())),
                },
            }
        }
    }
    Ok(options)
}

fn etcd_config(options: Vec<(String, String)>) -> std::result::Result<EtcdConfig, ConfigError> {
    let mut endpoints = Vec::new();
    let mut timeout = DEFAULT_ETCD_TIMEOUT;
    for (key, value) in options {
        match key.as_str() {
            "etcd.endpoints" => {
                for endpoint in value.split(',').filter(|e| !e.is_empty()) {
                    endpoints.push(check_endpoint(endpoint)?);
                }
            }
            "etcd.operationTimeout" => timeout = parse_duration(&key, &value)?,
            _ => {
                return Err(ConfigError::UnknownOption {
                    kind: "etcd",
                    key,
                    known: ETCD_OPTIONS,
                })
            }
        }
    }
    if endpoints.is_empty() {
        return Err(ConfigError::MissingEndpoints);
    }
    Ok(EtcdConfig { endpoints, timeout })
}

fn check_endpoint(endpoint: &str) -> std::result::Result<String, ConfigError> {
    let bad = || ConfigError::BadEndpoint(endpoint.to_string());
    let authority = endpoint.strip_prefix("http://").ok_or_else(bad)?;
    let authority = authority.trim_end_matches('/');
    let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || authority.contains('/') || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(format!("http://{authority}"))
}

/// `500ms`, `5s`, `2m`, or a bare number of seconds.
fn parse_duration(key: &str, value: &str) -> std::result::Result<Duration, ConfigError> {
    let bad = || ConfigError::BadDuration {
        key: key.to_string(),
        value: value.to_string(),
    };
    let (number, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(split) => value.split_at(split),
        None => (value, "s"),
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number * 60),
        _ => return Err(bad()),
    };
    if duration.is_zero() {
        return Err(bad());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_embedded() {
        assert_eq!(
            KvstoreConfig::from_flags::<&str>("", &[]).unwrap(),
            KvstoreConfig::Embedded
        );
        assert_eq!(
            KvstoreConfig::from_flags::<&str>("embedded", &[]).unwrap(),
            KvstoreConfig::Embedded
        );
    }

    #[test]
    fn etcd_endpoints_with_commas() {
        let config = KvstoreConfig::from_flags(
            "etcd",
            &["etcd.endpoints=http://127.0.0.1:2379,http://127.0.0.2:2379/"],
        )
        .unwrap();
        let KvstoreConfig::Etcd(etcd) = config else {
            panic!("not etcd")
        };
        assert_eq!(
            etcd.endpoints,
            vec!["http://127.0.0.1:2379", "http://127.0.0.2:2379"]
        );
        assert_eq!(etcd.timeout, DEFAULT_ETCD_TIMEOUT);
    }

    #[test]
    fn several_options_in_one_or_many_flags() {
        let one = KvstoreConfig::from_flags(
            "etcd",
            &["etcd.endpoints=http://h:1,http://h:2,etcd.operationTimeout=500ms"],
        )
        .unwrap();
        let many = KvstoreConfig::from_flags(
            "etcd",
            &[
                "etcd.endpoints=http://h:1,http://h:2",
                "etcd.operationTimeout=500ms",
            ],
        )
        .unwrap();
        assert_eq!(one, many);
        let KvstoreConfig::Etcd(etcd) = one else {
            panic!("not etcd")
        };
        assert_eq!(etcd.endpoints.len(), 2);
        assert_eq!(etcd.timeout, Duration::from_millis(500));
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let err = |kind: &str, opts: &[&str]| KvstoreConfig::from_flags(kind, opts).unwrap_err();
        assert_eq!(
            err("consul", &[]),
            ConfigError::UnknownKind("consul".into())
        );
        assert_eq!(err("etcd", &[]), ConfigError::MissingEndpoints);
        assert_eq!(
            err("etcd", &["etcd.endpoints=127.0.0.1:2379"]),
            ConfigError::BadEndpoint("127.0.0.1:2379".into())
        );
        assert_eq!(
            err("etcd", &["etcd.endpoints=https://h:2379"]),
            ConfigError::BadEndpoint("https://h:2379".into())
        );
        assert!(matches!(
            err("etcd", &["etcd.endpoints=http://h:1", "etcd.qps=3"]),
            ConfigError::UnknownOption { key, .. } if key == "etcd.qps"
        ));
        assert!(matches!(
            err("etcd", &["etcd.endpoints=http://h:1", "etcd.operationTimeout=soon"]),
            ConfigError::BadDuration { key, .. } if key == "etcd.operationTimeout"
        ));
        assert_eq!(
            err("etcd", &["http://h:1"]),
            ConfigError::Malformed("http://h:1".into())
        );
        assert!(matches!(
            err("embedded", &["etcd.endpoints=http://h:1"]),
            ConfigError::UnknownOption {
                kind: "embedded",
                ..
            }
        ));
    }
}
