//! kube-apiserver's audit log (`K8S_AUDIT=1`: one JSON line per request
//! received, level Metadata): which client made how many requests in a
//! window, and when the API server received each policy write.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;
use testbed::cluster::Cluster;

/// The bench's own scrapes that open and close the quiet window.
pub const START_MARK: &str = "/metrics?bench-window=start";
pub const END_MARK: &str = "/metrics?bench-window=end";

/// The whole log so far.
pub fn read(cluster: &Cluster) -> Result<String> {
    let path = cluster
        .control_plane()
        .kubeconfig()
        .parent()
        .context("the kubeconfig's directory")?
        .join("audit.log");
    std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (kube-apiserver started without K8S_AUDIT=1?)",
            path.display()
        )
    })
}

/// Requests in the window, by `verb resource` (or `verb /path`).
pub type Requests = BTreeMap<String, usize>;

#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Per node name: that node's agent's requests.
    pub agents: BTreeMap<String, Requests>,
    /// Everything else, by user name (kube-controller-manager's
    /// controllers, the API server's own loopback client).
    pub others: BTreeMap<String, usize>,
}

/// Counts the audit log's requests between the two window marks (the
/// marks themselves excluded): per agent by its node IP, the rest by user.
/// With `whole_run`, counts from the log's start instead (up to the end
/// mark).
pub fn count_window(
    log: &str,
    node_ips: &BTreeMap<String, String>,
    whole_run: bool,
) -> Result<Window> {
    let mut window = Window::default();
    for node in node_ips.values() {
        window.agents.insert(node.clone(), Requests::new());
    }
    let mut inside = whole_run;
    let mut closed = false;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).context("an audit log line is not JSON")?;
        let uri = event["requestURI"].as_str().unwrap_or_default();
        if uri == START_MARK {
            inside = true;
            continue;
        }
        if uri == END_MARK {
            closed = inside;
            break;
        }
        if !inside {
            continue;
        }
        let source = event["sourceIPs"][0].as_str().unwrap_or_default();
        match node_ips.get(source) {
            Some(node) => {
                *window
                    .agents
                    .entry(node.clone())
                    .or_default()
                    .entry(request_kind(&event, uri))
                    .or_default() += 1
            }
            None => {
                let user = event["user"]["username"].as_str().unwrap_or("?");
                *window.others.entry(user.to_string()).or_default() += 1;
            }
        }
    }
    anyhow::ensure!(closed, "the audit log does not hold both window marks");
    Ok(window)
}

/// `watch pods`, `patch ciliumnetworkpolicies/status`, `get /version`.
fn request_kind(event: &Value, uri: &str) -> String {
    let verb = event["verb"].as_str().unwrap_or("?");
    let object = &event["objectRef"];
    match object["resource"].as_str() {
        Some(resource) => match object["subresource"].as_str() {
            Some(sub) => format!("{verb} {resource}/{sub}"),
            None => format!("{verb} {resource}"),
        },
        None => format!("{verb} {}", uri.split('?').next().unwrap_or(uri)),
    }
}

/// When the API server received the first write (create, update or patch;
/// not of the status) of CiliumNetworkPolicy `name` at or after
/// `since_us`, in microseconds since the Unix epoch. A create names no
/// object when it arrives (the name is in the body): the first create
/// after `since_us` counts, the bench making one change at a time.
pub fn write_received(log: &str, name: &str, since_us: u64) -> Option<u64> {
    log.lines()
        .filter(|l| l.contains("ciliumnetworkpolicies"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            let object = &e["objectRef"];
            let verb = e["verb"].as_str().unwrap_or("");
            let ours = object["name"] == name || (verb == "create" && object["name"].is_null());
            object["resource"] == "ciliumnetworkpolicies"
                && object["subresource"].is_null()
                && ours
                && ["create", "update", "patch"].contains(&verb)
        })
        .filter_map(|e| unix_micros(e["requestReceivedTimestamp"].as_str()?))
        .find(|&at| at >= since_us)
}

/// `2026-12-07T06:08:09.564796Z` → microseconds since the Unix epoch.
pub fn unix_micros(text: &str) -> Option<u64> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|v| v.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|v| v.parse::<u64>().ok());
    let (h, m, s) = (t.next()??, t.next()??, t.next()??);
    let micros: u64 = format!("{fraction:0<6}").get(..6)?.parse().ok()?;
    // Days since 1970-01-01 from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(((days * 86_400 + h * 3600 + m * 60 + s) * 1_000_000) + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(uri: &str, ip: &str, user: &str, verb: &str, resource: Option<&str>) -> String {
        let mut e = serde_json::json!({"requestURI": uri, "sourceIPs": [ip],
            "user": {"username": user}, "verb": verb});
        if let Some(r) = resource {
            e["objectRef"] = serde_json::json!({"resource": r});
        }
        e.to_string()
    }

    #[test]
    fn counts_only_inside_the_marks_per_node_and_per_user() {
        let log = [
            line(
                "/api/v1/pods?watch=1",
                "192.168.5.10",
                "admin",
                "watch",
                Some("pods"),
            ),
            line(START_MARK, "192.168.5.1", "admin", "get", None),
            line(
                "/api/v1/pods?watch=1",
                "192.168.5.10",
                "admin",
                "watch",
                Some("pods"),
            ),
            line(
                "/api/v1/pods?watch=1",
                "192.168.5.10",
                "admin",
                "watch",
                Some("pods"),
            ),
            line("/version", "192.168.5.11", "admin", "get", None),
            line(
                "/api/v1/nodes",
                "127.0.0.1",
                "system:apiserver",
                "list",
                Some("nodes"),
            ),
            line(END_MARK, "192.168.5.1", "admin", "get", None),
            line("/version", "192.168.5.11", "admin", "get", None),
        ]
        .join("\n");
        let ips: BTreeMap<String, String> = [
            ("192.168.5.10".to_string(), "node0".to_string()),
            ("192.168.5.11".to_string(), "node1".to_string()),
            ("192.168.5.12".to_string(), "node2".to_string()),
        ]
        .into();
        let w = count_window(&log, &ips, false).unwrap();
        assert_eq!(w.agents["node0"]["watch pods"], 2);
        assert_eq!(w.agents["node1"]["get /version"], 1);
        assert!(w.agents["node2"].is_empty());
        assert_eq!(w.others["system:apiserver"], 1);
        assert!(count_window(&log.replace(END_MARK, "/x"), &ips, false).is_err());
        let all = count_window(&log, &ips, true).unwrap();
        assert_eq!(all.agents["node0"]["watch pods"], 3);
    }

    #[test]
    fn reads_kubernetes_micro_times() {
        assert_eq!(unix_micros("1970-01-01T00:00:00.000001Z"), Some(1));
        assert_eq!(
            unix_micros("2026-12-07T05:04:56.5Z"),
            Some(1_796_619_896_500_000)
        );
        assert_eq!(
            unix_micros("2000-02-29T00:00:00Z"),
            Some(951_782_400_000_000)
        );
        assert!(unix_micros("yesterday").is_none());
    }

    #[test]
    fn finds_the_policy_write_not_its_read_or_status() {
        let event = |verb: &str, name: Option<&str>, sub: Option<&str>, at: &str| {
            serde_json::json!({"verb": verb, "requestReceivedTimestamp": at,
                "objectRef": {"resource": "ciliumnetworkpolicies", "name": name,
                              "subresource": sub}})
            .to_string()
        };
        let ours = Some("flip-001");
        let log = [
            event("patch", ours, None, "2026-12-07T06:00:00.000000Z"),
            event("get", ours, None, "2026-12-07T06:00:01.000000Z"),
            event("patch", ours, Some("status"), "2026-12-07T06:00:01.100000Z"),
            event("patch", ours, None, "2026-12-07T06:00:01.200000Z"),
            event("get", Some("flip-002"), None, "2026-12-07T06:00:02.000000Z"),
            event("create", None, None, "2026-12-07T06:00:02.100000Z"),
        ]
        .join("\n");
        let since = unix_micros("2026-12-07T06:00:00.900000Z").unwrap();
        let at = write_received(&log, "flip-001", since).unwrap();
        assert_eq!(at - since, 300_000);
        let since = unix_micros("2026-12-07T06:00:01.900000Z").unwrap();
        assert_eq!(
            write_received(&log, "flip-002", since).unwrap() - since,
            200_000
        );
        assert!(write_received(&log, "flip-003", since + 300_000).is_none());
    }
}
