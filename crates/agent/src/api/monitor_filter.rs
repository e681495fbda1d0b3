//! `GET /v1/monitor` query parameters and the filter they make: `type`
//! (repeatable), `from`, `to` and `related-to` (endpoint ids).

use api::models::{monitor_kind, MonitorEvent};

use crate::error::AgentError;

const KINDS: [&str; 5] = [
    monitor_kind::DROP,
    monitor_kind::TRACE,
    monitor_kind::POLICY_VERDICT,
    monitor_kind::DEBUG,
    monitor_kind::L7,
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub kinds: Vec<String>,
    pub from: Option<u16>,
    pub to: Option<u16>,
    pub related_to: Option<u16>,
}

impl Filter {
    /// Parses the raw query; unknown parameters are ignored, bad values
    /// are errors naming the parameter.
    pub fn parse(query: Option<&str>) -> Result<Filter, AgentError> {
        let mut f = Filter::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let endpoint = || -> Result<Option<u16>, AgentError> {
                value.parse().map(Some).map_err(|_| {
                    AgentError::BadRequest(format!(
                        "{name}: {value:?} is not an endpoint id (0 to 65535)"
                    ))
                })
            };
            match name {
                "type" if KINDS.contains(&value) => f.kinds.push(value.to_string()),
                "type" => {
                    return Err(AgentError::BadRequest(format!(
                        "type: unknown event type {value:?} (expected drop, trace, policy-verdict, debug or l7)"
                    )))
                }
                "from" => f.from = endpoint()?,
                "to" => f.to = endpoint()?,
                "related-to" | "related_to" => f.related_to = endpoint()?,
                _ => {}
            }
        }
        Ok(f)
    }

    /// Whether an event (with its endpoints resolved) passes.
    pub fn matches(&self, ev: &MonitorEvent) -> bool {
        // Losses concern every client, whatever it filters on.
        if ev.kind == monitor_kind::LOST {
            return true;
        }
        (self.kinds.is_empty() || self.kinds.contains(&ev.kind))
            && self.from.is_none_or(|id| ev.src_endpoint == id)
            && self.to.is_none_or(|id| ev.dst_endpoint == id)
            && self.related_to.is_none_or(|id| {
                ev.src_endpoint == id || ev.dst_endpoint == id || ev.endpoint == id
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, src: u16, dst: u16) -> MonitorEvent {
        MonitorEvent {
            kind: kind.into(),
            src_endpoint: src,
            dst_endpoint: dst,
            endpoint: dst,
            ..Default::default()
        }
    }

    #[test]
    fn parses_every_parameter() {
        let f = Filter::parse(Some("type=drop&type=trace&from=3&to=4&related-to=5&x=y")).unwrap();
        assert_eq!(
            f,
            Filter {
                kinds: vec!["drop".into(), "trace".into()],
                from: Some(3),
                to: Some(4),
                related_to: Some(5),
            }
        );
        assert_eq!(Filter::parse(None).unwrap(), Filter::default());
        let err = Filter::parse(Some("from=abc")).unwrap_err().to_string();
        assert!(err.starts_with("from: \"abc\""), "{err}");
        assert!(Filter::parse(Some("type=bogus")).is_err());
    }

    #[test]
    fn filters_by_kind_and_endpoints() {
        let f = Filter::parse(Some("type=drop&from=3")).unwrap();
        assert!(f.matches(&event("drop", 3, 4)));
        assert!(!f.matches(&event("trace", 3, 4)));
        assert!(!f.matches(&event("drop", 4, 3)));
        let to = Filter::parse(Some("to=4")).unwrap();
        assert!(to.matches(&event("trace", 3, 4)));
        assert!(!to.matches(&event("trace", 4, 3)));
        let related = Filter::parse(Some("related-to=4")).unwrap();
        assert!(related.matches(&event("drop", 3, 4)));
        assert!(related.matches(&event("drop", 4, 0)));
        assert!(!related.matches(&event("drop", 3, 5)));
        assert!(Filter::default().matches(&event("debug", 0, 0)));
    }
}
