//! What the datapath reported about a probe's flow through the monitor, to
//! check that it agrees with what the real packet did: an allowed flow got an
//! `allow` policy verdict and no policy drop; a dropped flow got a policy
//! drop, with the denylist reason when a deny rule dropped it.

use std::time::Duration;

use api::{monitor_kind, MonitorEvent};

use super::probe::Expect;
use crate::monitor::Monitor;

/// How long the monitor stream may lag behind the datapath.
const EVENT_TIMEOUT: Duration = Duration::from_secs(2);
const REASON_DENY_RULE: &str = "Policy denied by denylist";

/// A probe's flow as monitor events describe it; `None` matches anything
/// (ICMP has no port). The host's source address is the kernel's choice, so
/// host probes are told apart by the source identity instead.
#[derive(Debug, Clone)]
pub struct Flow {
    pub src_ip: Option<String>,
    pub src_identity: Option<u32>,
    pub src_port: Option<u16>,
    pub dst_ip: String,
    pub dst_port: Option<u16>,
    pub protocol: u8,
}

impl Flow {
    fn matches(&self, ev: &MonitorEvent) -> bool {
        ev.protocol == self.protocol
            && ev.dst_ip == self.dst_ip
            && self.src_ip.as_ref().is_none_or(|ip| &ev.src_ip == ip)
            && self.src_identity.is_none_or(|id| ev.src_identity == id)
            && self.src_port.is_none_or(|p| ev.src_port == p)
            && self.dst_port.is_none_or(|p| ev.dst_port == p)
    }
}

fn is_policy_drop(ev: &MonitorEvent) -> bool {
    ev.kind == monitor_kind::DROP && ev.reason_text.starts_with("Policy denied")
}

fn is_allow(ev: &MonitorEvent) -> bool {
    ev.kind == monitor_kind::POLICY_VERDICT && ev.verdict == "allow"
}

/// `Err` says how the monitor's account differs from `observed_pass`, the
/// real packet's fate (which is what the probe is judged on; this only
/// checks that the datapath reports it truthfully).
pub fn check(
    monitor: &mut Monitor,
    flow: &Flow,
    observed_pass: bool,
    expect: Expect,
) -> Result<(), String> {
    let outcome = if observed_pass {
        let allowed = monitor.wait_for(|ev| is_allow(ev) && flow.matches(ev), EVENT_TIMEOUT);
        let dropped = monitor
            .seen()
            .iter()
            .find(|ev| is_policy_drop(ev) && flow.matches(ev))
            .cloned();
        match (allowed, dropped) {
            (Some(_), None) => Ok(()),
            (None, _) => {
                Err("the flow passed but no `allow` policy verdict was reported".to_string())
            }
            (_, Some(drop)) => Err(format!(
                "the flow passed but a policy drop was reported: {}",
                describe(&drop)
            )),
        }
    } else {
        match monitor.wait_for(|ev| is_policy_drop(ev) && flow.matches(ev), EVENT_TIMEOUT) {
            None => Err("the flow was dropped but no policy drop was reported".to_string()),
            Some(ev) if expect == Expect::Deny && ev.reason_text != REASON_DENY_RULE => {
                Err(format!(
                    "expected the drop reason {REASON_DENY_RULE:?}, got {}",
                    describe(&ev)
                ))
            }
            Some(_) => Ok(()),
        }
    };
    outcome.map_err(|why| {
        format!(
            "{why}; events for this flow:\n{}",
            events_for(monitor, flow)
        )
    })
}

fn events_for(monitor: &mut Monitor, flow: &Flow) -> String {
    let lines: Vec<String> = monitor
        .seen()
        .iter()
        .filter(|ev| flow.matches(ev))
        .map(|ev| format!("    {}", describe(ev)))
        .collect();
    if lines.is_empty() {
        "    (none)".to_string()
    } else {
        lines.join("\n")
    }
}

fn describe(ev: &MonitorEvent) -> String {
    format!(
        "{} {}{}{} endpoint {} {} {}:{} -> {}:{} proto {} identity {}->{} match {}",
        ev.kind,
        ev.verdict,
        ev.reason_text,
        if ev.ct_state.is_empty() {
            String::new()
        } else {
            format!(" ct {}", ev.ct_state)
        },
        ev.endpoint,
        ev.direction,
        ev.src_ip,
        ev.src_port,
        ev.dst_ip,
        ev.dst_port,
        ev.protocol,
        ev.src_identity,
        ev.dst_identity,
        ev.match_type
    )
}
