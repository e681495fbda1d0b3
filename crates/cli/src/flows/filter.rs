//! Hubble's flow filters from `cilium flows` flags, built the way
//! `hubble observe` builds them, so the server applies the same semantics:
//! a "related to" flag (`--pod`, `--label`, `--port`, `--namespace`) puts
//! its value on the source side of one filter and the destination side of
//! another, and the flow passes if either filter matches; `--from-*` and
//! `--to-*` flags and the flow-wide ones (`--verdict`, `--type`,
//! `--protocol`) go into both.

use hubble::names::{trace_point_sub_type, EVENT_TYPE_NAMES};
use hubble::proto::flow::{EventTypeFilter, FlowFilter, Verdict};

/// The filter flags, each as given (repeatable).
#[derive(Debug, Default, Clone)]
pub struct FilterFlags {
    pub pod: Vec<String>,
    pub from_pod: Vec<String>,
    pub to_pod: Vec<String>,
    pub namespace: Vec<String>,
    pub from_namespace: Vec<String>,
    pub to_namespace: Vec<String>,
    pub label: Vec<String>,
    pub from_label: Vec<String>,
    pub to_label: Vec<String>,
    pub ip: Vec<String>,
    pub from_ip: Vec<String>,
    pub to_ip: Vec<String>,
    pub port: Vec<String>,
    pub from_port: Vec<String>,
    pub to_port: Vec<String>,
    pub verdict: Vec<String>,
    pub protocol: Vec<String>,
    pub event_type: Vec<String>,
    pub traffic_direction: Vec<String>,
}

/// Flags Hubble refuses to combine (its conflict table, for the flags we
/// have).
const CONFLICTS: &[&[&str]] = &[
    &["from-ip", "ip", "from-namespace", "namespace"],
    &["from-ip", "ip", "from-pod", "pod"],
    &["to-ip", "ip", "to-namespace", "namespace"],
    &["to-ip", "ip", "to-pod", "pod"],
    &["to-pod", "namespace"],
    &["from-pod", "namespace"],
    &["label", "from-label"],
    &["label", "to-label"],
    &["port", "to-port"],
    &["port", "from-port"],
];

impl FilterFlags {
    fn used(&self) -> Vec<&'static str> {
        [
            ("pod", &self.pod),
            ("from-pod", &self.from_pod),
            ("to-pod", &self.to_pod),
            ("namespace", &self.namespace),
            ("from-namespace", &self.from_namespace),
            ("to-namespace", &self.to_namespace),
            ("label", &self.label),
            ("from-label", &self.from_label),
            ("to-label", &self.to_label),
            ("ip", &self.ip),
            ("from-ip", &self.from_ip),
            ("to-ip", &self.to_ip),
            ("port", &self.port),
            ("from-port", &self.from_port),
            ("to-port", &self.to_port),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, _)| name)
        .collect()
    }

    /// The whitelist `hubble observe` would send for the same flags: none,
    /// one filter, or a source-side and a destination-side filter.
    pub fn to_filters(&self) -> Result<Vec<FlowFilter>, String> {
        let used = self.used();
        for group in CONFLICTS {
            let hit: Vec<&&str> = group.iter().filter(|f| used.contains(f)).collect();
            if hit.len() > 1 {
                return Err(format!(
                    "filters --{} and --{} cannot be combined",
                    hit[0], hit[1]
                ));
            }
        }
        let mut both = FlowFilter::default();
        let (mut left, mut right);
        both.source_pod.extend(self.from_pod.iter().cloned());
        both.destination_pod.extend(self.to_pod.iter().cloned());
        both.source_label.extend(self.from_label.iter().cloned());
        both.destination_label.extend(self.to_label.iter().cloned());
        both.source_ip.extend(self.from_ip.iter().cloned());
        both.destination_ip.extend(self.to_ip.iter().cloned());
        both.source_port.extend(self.from_port.iter().cloned());
        both.destination_port.extend(self.to_port.iter().cloned());
        for v in &self.verdict {
            let verdict = Verdict::from_str_name(&v.to_ascii_uppercase())
                .ok_or_else(|| format!("invalid --verdict value: {v}"))?;
            both.verdict.push(verdict as i32);
        }
        both.protocol.extend(self.protocol.iter().cloned());
        for t in &self.event_type {
            both.event_type.push(event_type(t)?);
        }
        for d in &self.traffic_direction {
            both.traffic_direction
                .push(match d.to_ascii_lowercase().as_str() {
                    "ingress" => 1,
                    "egress" => 2,
                    other => {
                        return Err(format!(
                            "{other}: invalid traffic direction, expected ingress or egress"
                        ))
                    }
                });
        }
        left = both.clone();
        right = both;
        left.source_pod.extend(self.pod.iter().cloned());
        right.destination_pod.extend(self.pod.iter().cloned());
        left.source_label.extend(self.label.iter().cloned());
        right.destination_label.extend(self.label.iter().cloned());
        left.source_ip.extend(self.ip.iter().cloned());
        right.destination_ip.extend(self.ip.iter().cloned());
        left.source_port.extend(self.port.iter().cloned());
        right.destination_port.extend(self.port.iter().cloned());

        let sources: Vec<&String> = left.source_pod.iter().chain(&right.source_pod).collect();
        let destinations: Vec<&String> = left
            .destination_pod
            .iter()
            .chain(&right.destination_pod)
            .collect();
        let all: Vec<&String> = sources.iter().chain(&destinations).copied().collect();
        namespace_conflicts(&self.namespace, &all)?;
        namespace_conflicts(&self.from_namespace, &sources)?;
        namespace_conflicts(&self.to_namespace, &destinations)?;
        for f in [&mut left, &mut right] {
            namespaced(&mut f.destination_pod, &self.to_namespace);
            namespaced(&mut f.source_pod, &self.from_namespace);
        }
        namespaced(&mut left.source_pod, &self.namespace);
        namespaced(&mut right.destination_pod, &self.namespace);

        Ok(
            if left == FlowFilter::default() && right == FlowFilter::default() {
                Vec::new()
            } else if left == right {
                vec![left]
            } else {
                vec![left, right]
            },
        )
    }
}

/// A pod given with a namespace other than a `--namespace` one.
fn namespace_conflicts(namespaces: &[String], pods: &[&String]) -> Result<(), String> {
    for ns in namespaces {
        for pod in pods {
            if pod.split_once('/').is_some_and(|(pod_ns, _)| pod_ns != ns) {
                return Err(format!(
                    "namespace conflict: {ns:?} does not contain {pod:?}"
                ));
            }
        }
    }
    Ok(())
}

/// Hubble's namespace modifier: pods without a namespace get each of
/// `namespaces`; with no pod at all, the whole namespace (`ns/`).
fn namespaced(pods: &mut Vec<String>, namespaces: &[String]) {
    if namespaces.is_empty() {
        return;
    }
    if pods.is_empty() {
        pods.push(String::new());
    }
    *pods = pods
        .iter()
        .flat_map(|p| -> Vec<String> {
            if p.contains('/') {
                vec![p.clone()]
            } else {
                namespaces.iter().map(|ns| format!("{ns}/{p}")).collect()
            }
        })
        .collect();
}

/// `TYPE[:SUBTYPE]`, by Cilium's names or numbers.
fn event_type(text: &str) -> Result<EventTypeFilter, String> {
    let (name, sub) = match text.split_once(':') {
        Some((n, s)) => (n, Some(s)),
        None => (text, None),
    };
    let r#type = match EVENT_TYPE_NAMES.iter().find(|(n, _)| *n == name) {
        Some((_, t)) => *t,
        None => name.parse::<u32>().map(|t| t as i32).map_err(|_| {
            format!("unable to parse type '{name}', not a known type name and unable to parse as numeric value")
        })?,
    };
    let mut filter = EventTypeFilter {
        r#type,
        ..Default::default()
    };
    if let Some(sub) = sub {
        filter.match_sub_type = true;
        filter.sub_type = match (r#type, trace_point_sub_type(sub)) {
            (4, Some(n)) => n,
            _ => sub.parse::<u32>().map(|s| s as i32).map_err(|_| {
                format!("unable to parse event sub-type '{sub}', not a known sub-type name and unable to parse as numeric value")
            })?,
        };
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> FilterFlags {
        FilterFlags::default()
    }

    #[test]
    fn no_flags_no_filter() {
        assert!(flags().to_filters().unwrap().is_empty());
    }

    #[test]
    fn related_flags_become_a_source_and_a_destination_filter() {
        let f = FilterFlags {
            pod: vec!["shop/client".into()],
            port: vec!["53".into()],
            verdict: vec!["dropped".into()],
            ..flags()
        };
        let out = f.to_filters().unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].source_pod, ["shop/client"]);
        assert_eq!(out[0].source_port, ["53"]);
        assert!(out[0].destination_pod.is_empty());
        assert_eq!(out[1].destination_pod, ["shop/client"]);
        assert_eq!(out[1].destination_port, ["53"]);
        assert_eq!(out[0].verdict, [Verdict::Dropped as i32]);
        assert_eq!(out[1].verdict, [Verdict::Dropped as i32]);
    }

    #[test]
    fn from_and_to_flags_give_one_filter() {
        let f = FilterFlags {
            from_pod: vec!["shop/client".into()],
            to_port: vec!["80".into()],
            protocol: vec!["tcp".into()],
            ..flags()
        };
        let out = f.to_filters().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].source_pod, ["shop/client"]);
        assert_eq!(out[0].destination_port, ["80"]);
        assert_eq!(out[0].protocol, ["tcp"]);
    }

    #[test]
    fn namespaces_apply_to_pods_like_hubble() {
        let whole = FilterFlags {
            namespace: vec!["shop".into()],
            ..flags()
        };
        let out = whole.to_filters().unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].source_pod, ["shop/"]);
        assert!(out[0].destination_pod.is_empty());
        assert_eq!(out[1].destination_pod, ["shop/"]);

        let pod_in_ns = FilterFlags {
            namespace: vec!["shop".into()],
            pod: vec!["client".into()],
            ..flags()
        };
        let out = pod_in_ns.to_filters().unwrap();
        assert_eq!(out[0].source_pod, ["shop/client"]);
        assert_eq!(out[1].destination_pod, ["shop/client"]);

        let to_ns = FilterFlags {
            to_namespace: vec!["a".into(), "b".into()],
            ..flags()
        };
        assert_eq!(to_ns.to_filters().unwrap()[0].destination_pod, ["a/", "b/"]);

        let clash = FilterFlags {
            namespace: vec!["shop".into()],
            pod: vec!["other/client".into()],
            ..flags()
        };
        assert!(clash
            .to_filters()
            .unwrap_err()
            .contains("namespace conflict"));
    }

    #[test]
    fn labels_and_conflicts() {
        let f = FilterFlags {
            label: vec!["app=server".into()],
            ..flags()
        };
        let out = f.to_filters().unwrap();
        assert_eq!(out[0].source_label, ["app=server"]);
        assert_eq!(out[1].destination_label, ["app=server"]);
        let clash = FilterFlags {
            label: vec!["a".into()],
            from_label: vec!["b".into()],
            ..flags()
        };
        assert_eq!(
            clash.to_filters().unwrap_err(),
            "filters --label and --from-label cannot be combined"
        );
        let clash = FilterFlags {
            from_pod: vec!["a".into()],
            namespace: vec!["b".into()],
            ..flags()
        };
        assert!(clash.to_filters().is_err());
    }

    #[test]
    fn types_by_name_number_and_sub_type() {
        let f = FilterFlags {
            event_type: vec![
                "drop".into(),
                "l7".into(),
                "trace:to-endpoint".into(),
                "policy-verdict".into(),
                "4:3".into(),
            ],
            ..flags()
        };
        let types: Vec<(i32, bool, i32)> = f.to_filters().unwrap()[0]
            .event_type
            .iter()
            .map(|t| (t.r#type, t.match_sub_type, t.sub_type))
            .collect();
        assert_eq!(
            types,
            [
                (1, false, 0),
                (129, false, 0),
                (4, true, 0),
                (5, false, 0),
                (4, true, 3)
            ]
        );
        let bad = FilterFlags {
            event_type: vec!["nope".into()],
            ..flags()
        };
        assert!(bad.to_filters().is_err());
        let bad = FilterFlags {
            verdict: vec!["MAYBE".into()],
            ..flags()
        };
        assert_eq!(
            bad.to_filters().unwrap_err(),
            "invalid --verdict value: MAYBE"
        );
    }
}
