//! The `CNI_*` environment variables a runtime sets for each call, parsed
//! and validated from a lookup function so tests need no real environment.

use crate::error::CniError;

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    /// CNI 1.1: can the plugin serve ADD now?
    Status,
    /// CNI 1.1: clean up attachments the runtime no longer knows.
    Gc,
}

impl Command {
    pub fn parse(text: &str) -> Result<Command, CniError> {
        Ok(match text {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "" => return Err(CniError::invalid_env(
                "CNI_COMMAND is not set: cilium-cni is a CNI plugin, run by a container runtime \
                     (ADD, DEL, CHECK, VERSION, STATUS or GC)",
            )),
            other => {
                return Err(CniError::invalid_env(format!(
                    "CNI_COMMAND={other:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"
                )))
            }
        })
    }
}

/// What identifies one attachment: container, namespace, interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub container_id: String,
    /// Path of the container's network namespace; `None` only for DEL
    /// (containerd's second DEL comes without one).
    pub netns: Option<String>,
    /// Name of the interface inside the container.
    pub ifname: String,
    pub args: CniArgs,
}

/// `CNI_ARGS`: `KEY=VALUE;KEY=VALUE`. Only the keys we use are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub k8s_pod_namespace: Option<String>,
    pub k8s_pod_name: Option<String>,
    pub k8s_pod_infra_container_id: Option<String>,
}

impl CniArgs {
    /// Unknown keys are ignored: runtimes send `IgnoreUnknown=1` and keys
    /// meant for other plugins of the chain.
    pub fn parse(text: &str) -> Result<CniArgs, CniError> {
        let mut args = CniArgs::default();
        for (i, pair) in text.split(';').enumerate() {
            if pair.trim().is_empty() {
                continue;
            }
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                CniError::invalid_env(format!(
                    "CNI_ARGS item {i} {pair:?} is not KEY=VALUE (CNI_ARGS={text:?})"
                ))
            })?;
            let value = Some(value.to_string()).filter(|v| !v.is_empty());
            match key {
                "K8S_POD_NAMESPACE" => args.k8s_pod_namespace = value,
                "K8S_POD_NAME" => args.k8s_pod_name = value,
                "K8S_POD_INFRA_CONTAINER_ID" => args.k8s_pod_infra_container_id = value,
                _ => {}
            }
        }
        Ok(args)
    }
}

/// Reads the attachment variables. `netns_required` is false for DEL.
pub fn attachment(
    get: &dyn Fn(&str) -> Option<String>,
    netns_required: bool,
) -> Result<Attachment, CniError> {
    let container_id = required(get, "CNI_CONTAINERID")?;
    validate_container_id(&container_id)?;
    let ifname = required(get, "CNI_IFNAME")?;
    validate_ifname(&ifname)?;
    let netns = get("CNI_NETNS").filter(|n| !n.is_empty());
    if netns_required && netns.is_none() {
        return Err(CniError::invalid_env(
            "CNI_NETNS is not set: ADD and CHECK need the path of the container's network namespace",
        ));
    }
    let args = CniArgs::parse(&get("CNI_ARGS").unwrap_or_default())?;
    Ok(Attachment {
        container_id,
        netns,
        ifname,
        args,
    })
}

fn required(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<String, CniError> {
    get(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| CniError::invalid_env(format!("{name} is not set")))
}

/// The spec: letters, digits, `_`, `.`, `-`, starting with a letter or digit.
fn validate_container_id(id: &str) -> Result<(), CniError> {
    let ok_start = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok_start && ok_rest {
        Ok(())
    } else {
        Err(CniError::invalid_env(format!(
            "CNI_CONTAINERID={id:?} may only hold letters, digits, '_', '.' and '-', starting with a letter or digit"
        )))
    }
}

/// What the kernel accepts as an interface name.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let bad = name.is_empty()
        || name.len() > MAX_IFNAME_LEN
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if bad {
        Err(CniError::invalid_env(format!(
            "CNI_IFNAME={name:?} is not a valid interface name (1-{MAX_IFNAME_LEN} bytes, no '/', ':' or whitespace)"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn commands_parse_and_unknown_ones_are_code_4() {
        assert_eq!(Command::parse("ADD").unwrap(), Command::Add);
        assert_eq!(Command::parse("GC").unwrap(), Command::Gc);
        assert_eq!(Command::parse("add").unwrap_err().code, code::INVALID_ENV);
        assert!(Command::parse("").unwrap_err().msg.contains("not set"));
    }

    #[test]
    fn cni_args_keep_pod_identity_and_ignore_the_rest() {
        let a = CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;X=",
        )
        .unwrap();
        assert_eq!(a.k8s_pod_namespace.as_deref(), Some("shop"));
        assert_eq!(a.k8s_pod_name.as_deref(), Some("web-0"));
        assert_eq!(a.k8s_pod_infra_container_id.as_deref(), Some("abc"));
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
        assert_eq!(CniArgs::parse("K8S_POD_NAME=;").unwrap().k8s_pod_name, None);
        let e = CniArgs::parse("IgnoreUnknown=1;garbage").unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(e.msg.contains("\"garbage\""), "{e:?}");
    }

    #[test]
    fn attachment_reads_and_validates_everything() {
        let get = env(&[
            ("CNI_CONTAINERID", "c0ffee"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "K8S_POD_NAME=p"),
        ]);
        let a = attachment(&get, true).unwrap();
        assert_eq!(a.container_id, "c0ffee");
        assert_eq!(a.netns.as_deref(), Some("/run/netns/x"));
        assert_eq!(a.ifname, "eth0");
        assert_eq!(a.args.k8s_pod_name.as_deref(), Some("p"));
    }

    #[test]
    fn netns_is_optional_only_when_allowed() {
        let get = env(&[
            ("CNI_CONTAINERID", "c"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", ""),
        ]);
        assert_eq!(attachment(&get, false).unwrap().netns, None);
        let e = attachment(&get, true).unwrap_err();
        assert!(e.msg.contains("CNI_NETNS"), "{e:?}");
    }

    #[test]
    fn missing_or_bad_identifiers_are_code_4() {
        let e = attachment(&env(&[("CNI_IFNAME", "eth0")]), false).unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(e.msg.contains("CNI_CONTAINERID"));
        let e = attachment(
            &env(&[("CNI_CONTAINERID", "a/b"), ("CNI_IFNAME", "eth0")]),
            false,
        )
        .unwrap_err();
        assert!(e.msg.contains("a/b"));
        for bad in ["", "..", "a/b", "has space", "sixteen-chars-xx"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_ifname("eth0").is_ok());
    }
}
