//! Each policy decision's rules on its flow: `*_allowed_by` and
//! `*_denied_by` (Cilium's fields), derived by the daemon from the
//! endpoint's rules (`daemon::flow_policy`) and remembered per packet kind,
//! so that a burst of like flows costs one derivation.
//!
//! Which flows get them: policy verdicts and policy drops (the datapath's
//! decision), and L7 records. An L7 request the proxy refused names, as
//! denying it, the rules that sent the connection to the proxy: their L7
//! sections are what the request failed to match.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::models::{monitor_kind, MonitorEvent};
use hubble::proto::flow::{Endpoint, Flow, Policy, TrafficDirection, Verdict};
use policy::Direction;

use crate::daemon::flow_policy::{Deciders, RuleRef};
use crate::daemon::Daemon;

/// How long derived rules are reused without asking for the revision.
const REVISION_CHECK: Duration = Duration::from_millis(250);
/// Forgotten entirely this often: endpoints' labels and peers' identities
/// may change without a new revision.
const FLUSH: Duration = Duration::from_secs(2);
/// Drop reasons that are policy decisions (Cilium's numbers).
const POLICY_DENIED: u8 = 133;
const POLICY_DENY: u8 = 181;

type Key = (u16, u32, u8, u16, Direction);

pub struct RuleNamer {
    daemon: Arc<Daemon>,
    revision: u64,
    checked: Instant,
    flushed: Instant,
    known: HashMap<Key, Option<Arc<Deciders>>>,
}

impl RuleNamer {
    pub fn new(daemon: Arc<Daemon>) -> Self {
        let revision = daemon.policy_revision();
        RuleNamer {
            daemon,
            revision,
            checked: Instant::now(),
            flushed: Instant::now(),
            known: HashMap::new(),
        }
    }

    /// Adds the deciding rules to `flow`, built from the event `ev` (its
    /// sides named in the flow).
    pub fn annotate(&mut self, ev: &MonitorEvent, flow: &mut Flow) {
        let l7 = ev.kind == monitor_kind::L7;
        let decision = match ev.kind.as_str() {
            monitor_kind::POLICY_VERDICT => true,
            monitor_kind::DROP => matches!(ev.reason, POLICY_DENIED | POLICY_DENY),
            _ => l7,
        };
        let direction = match TrafficDirection::try_from(flow.traffic_direction) {
            Ok(TrafficDirection::Ingress) => Direction::Ingress,
            Ok(TrafficDirection::Egress) => Direction::Egress,
            _ => return,
        };
        if !decision {
            return;
        }
        // The flow's sides carry the local endpoints its event was named with.
        let id = |side: &Option<Endpoint>| side.as_ref().map_or(0, |e| e.id as u16);
        let (endpoint, peer) = match direction {
            Direction::Ingress => (id(&flow.destination), ev.src_identity),
            Direction::Egress => (id(&flow.source), ev.dst_identity),
        };
        let endpoint = if ev.endpoint != 0 {
            ev.endpoint
        } else {
            endpoint
        };
        if endpoint == 0 {
            return;
        }
        // The proxy's records say TCP; DNS is mostly UDP, as its rules are.
        let protocol = match ev.l7.as_ref() {
            Some(r) if r.protocol == "dns" => 17,
            _ => ev.protocol,
        };
        let Some(found) = self.lookup((endpoint, peer, protocol, ev.dst_port, direction)) else {
            return;
        };
        let policies = |rules: &[RuleRef]| -> Vec<Policy> {
            rules
                .iter()
                .map(|r| Policy {
                    name: r.name.clone(),
                    namespace: r.namespace.clone(),
                    labels: r.labels.clone(),
                    revision: r.revision,
                    kind: r.kind.clone(),
                })
                .collect()
        };
        let forwarded = flow.verdict == Verdict::Forwarded as i32;
        let (allowed, denied) = match (forwarded, l7) {
            (true, _) => (policies(&found.allowed_by), Vec::new()),
            (false, false) => (Vec::new(), policies(&found.denied_by)),
            (false, true) => (Vec::new(), policies(&found.allowed_by)),
        };
        match direction {
            Direction::Ingress => {
                flow.ingress_allowed_by = allowed;
                flow.ingress_denied_by = denied;
            }
            Direction::Egress => {
                flow.egress_allowed_by = allowed;
                flow.egress_denied_by = denied;
            }
        }
    }

    fn lookup(&mut self, key: Key) -> Option<Arc<Deciders>> {
        if self.flushed.elapsed() >= FLUSH {
            self.known.clear();
            self.flushed = Instant::now();
        }
        if self.checked.elapsed() >= REVISION_CHECK {
            let revision = self.daemon.policy_revision();
            if revision != self.revision {
                self.known.clear();
                self.revision = revision;
            }
            self.checked = Instant::now();
        }
        if let Some(found) = self.known.get(&key) {
            return found.clone();
        }
        let (endpoint, peer, protocol, dport, direction) = key;
        let found = self
            .daemon
            .deciding_rules(endpoint, peer, protocol, dport, direction)
            .map(Arc::new);
        self.known.insert(key, found.clone());
        found
    }
}
