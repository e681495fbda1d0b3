//! The UI's `/api/flows` query string as Hubble flow filters, built the
//! way `cilium flows` builds them from the same flags, so the page and the
//! CLI select the same flows: `namespace`, `pod` and `port` are "related
//! to" (either side of the flow), `verdict` and `protocol` flow-wide.

use hubble::proto::flow::{FlowFilter, Verdict};
use hubble::FlowFilters;

/// What the page asks for; an empty value is no filter.
#[derive(Debug, Default, PartialEq)]
pub struct FlowQuery {
    pub namespace: String,
    pub pod: String,
    pub verdict: String,
    pub protocol: String,
    pub port: String,
    /// Only flows at or after this instant (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// At most this many (the newest) rows in the table.
    pub limit: usize,
    /// Rows only for flows numbered this or later: the page asks for what
    /// it does not have yet (0: all).
    pub from: u64,
}

/// Rows the table gets when the page does not say.
pub const DEFAULT_LIMIT: usize = 200;

impl FlowQuery {
    /// From `key=value` pairs; an unknown key or a bad number is an error
    /// naming it.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<FlowQuery, String> {
        let mut q = FlowQuery {
            limit: DEFAULT_LIMIT,
            ..FlowQuery::default()
        };
        for (key, value) in pairs {
            let value = value.trim().to_string();
            match key.as_str() {
                "namespace" => q.namespace = value,
                "pod" => q.pod = value,
                "verdict" => q.verdict = value,
                "protocol" => q.protocol = value,
                "port" => q.port = value,
                "since" if value.is_empty() => {}
                "since" => {
                    q.since_ms = Some(
                        value
                            .parse()
                            .map_err(|_| format!("since: {value:?} is not Unix milliseconds"))?,
                    )
                }
                "limit" => {
                    q.limit = value
                        .parse()
                        .map_err(|_| format!("limit: {value:?} is not a number"))?
                }
                "from" => {
                    q.from = value
                        .parse()
                        .map_err(|_| format!("from: {value:?} is not a flow number"))?
                }
                other => return Err(format!("unknown parameter {other:?}")),
            }
        }
        Ok(q)
    }

    /// What names the query's selection apart from its moving window and
    /// the page's cursor: the same key, the same service map.
    pub fn map_key(&self) -> String {
        [
            &self.namespace,
            &self.pod,
            &self.verdict,
            &self.protocol,
            &self.port,
        ]
        .map(|v| v.as_str())
        .join("\n")
    }

    /// The whitelist: none, one filter, or a source-side and a
    /// destination-side one when a related-to field is set.
    pub fn filters(&self) -> Result<FlowFilters, String> {
        let mut both = FlowFilter::default();
        if !self.verdict.is_empty() {
            let v = Verdict::from_str_name(&self.verdict.to_ascii_uppercase())
                .ok_or_else(|| format!("invalid verdict {:?}", self.verdict))?;
            both.verdict.push(v as i32);
        }
        if !self.protocol.is_empty() {
            both.protocol.push(self.protocol.clone());
        }
        // As hubble: a namespace applies to the pod; a namespace alone
        // selects every pod in it.
        let pod = match (self.namespace.as_str(), self.pod.as_str()) {
            ("", "") => None,
            (ns, "") => Some(format!("{ns}/")),
            ("", pod) => Some(pod.to_string()),
            (ns, pod) if !pod.contains('/') => Some(format!("{ns}/{pod}")),
            (_, pod) => Some(pod.to_string()),
        };
        let port = (!self.port.is_empty()).then(|| self.port.clone());
        let whitelist = if pod.is_none() && port.is_none() {
            if both == FlowFilter::default() {
                vec![]
            } else {
                vec![both]
            }
        } else {
            let (mut src, mut dst) = (both.clone(), both);
            src.source_pod.extend(pod.clone());
            dst.destination_pod.extend(pod);
            src.source_port.extend(port.clone());
            dst.destination_port.extend(port);
            vec![src, dst]
        };
        FlowFilters::new(&whitelist, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubble::proto::flow::{layer4, Endpoint, Flow, Layer4, Udp};

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn flow(src: (&str, &str), dst: (&str, &str), dport: u32, verdict: Verdict) -> Flow {
        let ep = |(ns, pod): (&str, &str)| Endpoint {
            namespace: ns.into(),
            pod_name: pod.into(),
            ..Default::default()
        };
        Flow {
            source: Some(ep(src)),
            destination: Some(ep(dst)),
            verdict: verdict as i32,
            l4: Some(Layer4 {
                protocol: Some(layer4::Protocol::Udp(Udp {
                    source_port: 40000,
                    destination_port: dport,
                })),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn parses_the_page_parameters() {
        let q = FlowQuery::from_pairs(&pairs(&[
            ("namespace", "shop"),
            ("verdict", "dropped"),
            ("since", "1700000000000"),
            ("limit", "5"),
            ("port", ""),
        ]))
        .unwrap();
        assert_eq!(q.namespace, "shop");
        assert_eq!(q.since_ms, Some(1_700_000_000_000));
        assert_eq!(q.limit, 5);
        assert_eq!(q.from, 0);
        let q = FlowQuery::from_pairs(&pairs(&[("from", "4096")])).unwrap();
        assert_eq!(q.from, 4096);
        assert!(FlowQuery::from_pairs(&pairs(&[("from", "-1")]))
            .unwrap_err()
            .contains("from"));
        assert!(FlowQuery::from_pairs(&pairs(&[("since", "soon")]))
            .unwrap_err()
            .contains("since"));
        assert!(FlowQuery::from_pairs(&pairs(&[("colour", "red")]))
            .unwrap_err()
            .contains("colour"));
    }

    #[test]
    fn related_fields_match_either_side_and_verdict_the_whole_flow() {
        let allowed = flow(
            ("shop", "client"),
            ("shop", "server"),
            53,
            Verdict::Forwarded,
        );
        let denied = flow(
            ("shop", "intruder"),
            ("shop", "server"),
            53,
            Verdict::Dropped,
        );
        let elsewhere = flow(("lab", "a"), ("lab", "b"), 80, Verdict::Forwarded);
        let select = |list: &[(&str, &str)]| {
            let f = FlowQuery::from_pairs(&pairs(list))
                .unwrap()
                .filters()
                .unwrap();
            [&allowed, &denied, &elsewhere]
                .iter()
                .map(|x| f.matches(x))
                .collect::<Vec<_>>()
        };
        assert_eq!(select(&[]), [true, true, true]);
        assert_eq!(select(&[("namespace", "shop")]), [true, true, false]);
        assert_eq!(
            select(&[("namespace", "shop"), ("pod", "server")]),
            [true, true, false]
        );
        assert_eq!(select(&[("pod", "shop/client")]), [true, false, false]);
        assert_eq!(select(&[("verdict", "DROPPED")]), [false, true, false]);
        assert_eq!(select(&[("port", "80")]), [false, false, true]);
        assert_eq!(select(&[("protocol", "udp")]), [true, true, true]);
        assert_eq!(select(&[("protocol", "tcp")]), [false, false, false]);
    }

    #[test]
    fn bad_values_are_errors() {
        let q = |list: &[(&str, &str)]| FlowQuery::from_pairs(&pairs(list)).unwrap().filters();
        assert!(q(&[("verdict", "maybe")]).unwrap_err().contains("maybe"));
        assert!(q(&[("port", "99999")]).is_err());
    }
}
