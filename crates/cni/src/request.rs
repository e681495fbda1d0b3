//! One plugin invocation, decoded from the environment and stdin before
//! anything is touched: a bad call fails here, with nothing created.

use serde::Deserialize;

use crate::config::NetConf;
use crate::env::{self, Attachment, Command};
use crate::error::{code, CniError};
use crate::labels;
use crate::version;

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Version {
        requested: Option<String>,
    },
    /// `labels` are the endpoint's, computed up front so that a bad label
    /// fails before anything exists.
    Add {
        conf: NetConf,
        att: Attachment,
        labels: Vec<String>,
    },
    Del {
        conf: NetConf,
        att: Attachment,
    },
    Check {
        conf: NetConf,
        att: Attachment,
    },
    Status {
        conf: NetConf,
    },
    Gc {
        conf: NetConf,
    },
}

impl Request {
    pub fn parse(get: &dyn Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<Request, CniError> {
        let command = Command::parse(&get("CNI_COMMAND").unwrap_or_default())?;
        if command == Command::Version {
            return Ok(Request::Version {
                requested: requested_version(stdin),
            });
        }
        let conf = NetConf::parse(stdin)?;
        Ok(match command {
            Command::Add => {
                let att = env::attachment(get, true)?;
                let labels = labels::endpoint_labels(&conf, &att.args)?;
                Request::Add { conf, att, labels }
            }
            Command::Del => Request::Del {
                att: env::attachment(get, false)?,
                conf,
            },
            Command::Check => {
                if !version::at_least(&conf.cni_version, 0, 4) {
                    return Err(CniError::new(
                        code::INCOMPATIBLE_VERSION,
                        format!(
                            "CHECK needs cniVersion 0.4.0 or later, the configuration has {}",
                            conf.cni_version
                        ),
                        "",
                    ));
                }
                Request::Check {
                    att: env::attachment(get, true)?,
                    conf,
                }
            }
            Command::Status | Command::Gc => {
                if !version::at_least(&conf.cni_version, 1, 1) {
                    return Err(CniError::new(
                        code::INCOMPATIBLE_VERSION,
                        format!(
                            "{command:?} needs cniVersion 1.1.0, the configuration has {}",
                            conf.cni_version
                        ),
                        "",
                    ));
                }
                if command == Command::Status {
                    Request::Status { conf }
                } else {
                    Request::Gc { conf }
                }
            }
            Command::Version => unreachable!("answered above"),
        })
    }
}

/// The `cniVersion` on a VERSION call's stdin, if there is one.
fn requested_version(stdin: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct V {
        #[serde(rename = "cniVersion")]
        cni_version: Option<String>,
    }
    serde_json::from_slice::<V>(stdin).ok()?.cni_version
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

    const CONF: &[u8] = br#"{"cniVersion":"1.0.0","name":"cilium","type":"cilium-cni"}"#;

    #[test]
    fn version_needs_no_config() {
        let r = Request::parse(&env(&[("CNI_COMMAND", "VERSION")]), b"").unwrap();
        assert_eq!(r, Request::Version { requested: None });
        let r = Request::parse(
            &env(&[("CNI_COMMAND", "VERSION")]),
            br#"{"cniVersion":"0.4.0"}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Request::Version {
                requested: Some("0.4.0".into())
            }
        );
    }

    #[test]
    fn add_collects_attachment_and_labels() {
        let r = Request::parse(
            &env(&[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "abc"),
                ("CNI_NETNS", "/run/netns/x"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p"),
            ]),
            CONF,
        )
        .unwrap();
        let Request::Add { att, labels, .. } = r else {
            panic!("{r:?}")
        };
        assert_eq!(att.container_id, "abc");
        assert!(labels.contains(&"k8s:io.kubernetes.pod.namespace=ns1".to_string()));
    }

    #[test]
    fn add_without_netns_fails_but_del_does_not() {
        let base = [("CNI_CONTAINERID", "abc"), ("CNI_IFNAME", "eth0")];
        let mut add = base.to_vec();
        add.push(("CNI_COMMAND", "ADD"));
        assert_eq!(
            Request::parse(&env(&add), CONF).unwrap_err().code,
            code::INVALID_ENV
        );
        let mut del = base.to_vec();
        del.push(("CNI_COMMAND", "DEL"));
        assert!(matches!(
            Request::parse(&env(&del), CONF),
            Ok(Request::Del { .. })
        ));
    }

    #[test]
    fn config_errors_come_before_env_errors() {
        let e = Request::parse(&env(&[("CNI_COMMAND", "ADD")]), b"{garbled").unwrap_err();
        assert_eq!(e.code, code::DECODING_FAILURE);
        let e = Request::parse(&env(&[("CNI_COMMAND", "ADD")]), b"").unwrap_err();
        assert_eq!(e.code, code::DECODING_FAILURE);
        let e = Request::parse(
            &env(&[("CNI_COMMAND", "ADD")]),
            br#"{"cniVersion":"2.0.0","name":"n"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
    }

    #[test]
    fn status_and_gc_need_1_1() {
        let e = Request::parse(&env(&[("CNI_COMMAND", "STATUS")]), CONF).unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        let conf = br#"{"cniVersion":"1.1.0","name":"cilium"}"#;
        assert!(matches!(
            Request::parse(&env(&[("CNI_COMMAND", "STATUS")]), conf),
            Ok(Request::Status { .. })
        ));
        assert!(matches!(
            Request::parse(&env(&[("CNI_COMMAND", "GC")]), conf),
            Ok(Request::Gc { .. })
        ));
    }

    #[test]
    fn check_needs_0_4() {
        let conf = br#"{"cniVersion":"0.3.1","name":"cilium"}"#;
        let e = Request::parse(
            &env(&[
                ("CNI_COMMAND", "CHECK"),
                ("CNI_CONTAINERID", "abc"),
                ("CNI_NETNS", "/x"),
                ("CNI_IFNAME", "eth0"),
            ]),
            conf,
        )
        .unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
    }
}
