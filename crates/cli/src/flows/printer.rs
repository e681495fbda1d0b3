//! Flows as `hubble observe` prints them: `compact` (one line per flow:
//! time, source and its identity, an arrow, destination and its identity,
//! type, verdict, summary), `table` (the same columns aligned under a
//! header), `json` (the flow alone, protobuf's JSON with proto names) and
//! `jsonpb` (the whole response). Pure: the caller writes the text.

use hubble::names::{drop_reason_text, match_type_name, reserved_identity_name, trace_point_name};
use hubble::proto::flow::{
    layer4, layer7, Flow, L7FlowType, LostEvent, LostEventSource, Policy, TrafficDirection, Verdict,
};
use hubble::proto::observer::GetFlowsResponse;
use hubble::timestamp::Timestamp;

use crate::table::Table;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Compact,
    Table,
    Json,
    Jsonpb,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Go's `time.StampMilli` (`Jan _2 15:04:05.000`), `utc_offset` seconds
/// east of UTC.
pub fn stamp_milli(t: Option<&Timestamp>, utc_offset: i64) -> String {
    let Some(t) = t.filter(|t| (0..1_000_000_000).contains(&t.nanos)) else {
        return "N/A".into();
    };
    let ((_, month, day), secs) = hubble::timestamp::civil(t.seconds + utc_offset);
    format!(
        "{} {day:>2} {:02}:{:02}:{:02}.{:03}",
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        t.nanos / 1_000_000
    )
}

fn ports(f: &Flow) -> (Option<u32>, Option<u32>) {
    match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(t)) => (Some(t.source_port), Some(t.destination_port)),
        Some(layer4::Protocol::Udp(u)) => (Some(u.source_port), Some(u.destination_port)),
        _ => (None, None),
    }
}

/// `namespace/pod[:port]`, else `IP[:port]`.
fn host(ip: &str, port: Option<u32>, namespace: &str, pod: &str) -> String {
    let name = match (namespace, pod) {
        (_, "") => ip.to_string(),
        ("", pod) => pod.to_string(),
        (ns, pod) => format!("{ns}/{pod}"),
    };
    match port {
        Some(p) if p != 0 && name.contains(':') => format!("[{name}]:{p}"),
        Some(p) if p != 0 => format!("{name}:{p}"),
        _ => name,
    }
}

/// Source and destination as Hubble names them.
pub fn host_names(f: &Flow) -> (String, String) {
    let Some(ip) = f.ip.as_ref() else {
        return (String::new(), String::new());
    };
    let (sport, dport) = ports(f);
    // A service names the side when no pod does, and its namespace wins
    // (as in hubble).
    let side = |ep: Option<&hubble::proto::flow::Endpoint>,
                svc: Option<&hubble::proto::flow::Service>,
                addr: &str,
                port| {
        let (mut ns, pod) = ep.map_or(("", ""), |e| (e.namespace.as_str(), e.pod_name.as_str()));
        let mut name = pod;
        if let Some(svc) = svc {
            ns = svc.namespace.as_str();
            if pod.is_empty() {
                name = svc.name.as_str();
            }
        }
        host(addr, port, ns, name)
    };
    (
        side(
            f.source.as_ref(),
            f.source_service.as_ref(),
            &ip.source,
            sport,
        ),
        side(
            f.destination.as_ref(),
            f.destination_service.as_ref(),
            &ip.destination,
            dport,
        ),
    )
}

/// `(world)` for reserved identities, else `(ID:1234)`.
pub fn identity(id: u32) -> String {
    match reserved_identity_name(id) {
        Some(name) => format!("({name})"),
        None => format!("(ID:{id})"),
    }
}

/// Hubble's TYPE column.
pub fn flow_type(f: &Flow) -> String {
    if let Some(l7) = &f.l7 {
        let kind = L7FlowType::try_from(l7.r#type)
            .unwrap_or(L7FlowType::UnknownL7Type)
            .as_str_name()
            .to_ascii_lowercase();
        return match &l7.record {
            Some(layer7::Record::Http(_)) => format!("http-{kind}"),
            Some(layer7::Record::Kafka(_)) => format!("kafka-{kind}"),
            Some(layer7::Record::Dns(d)) => format!("dns-{kind} {}", d.observation_source),
            None => format!("l7-{kind}"),
        };
    }
    let et = f.event_type.unwrap_or_default();
    match et.r#type {
        4 => trace_point_name(et.sub_type).map_or_else(|| et.sub_type.to_string(), str::to_string),
        1 => drop_reason_text(et.sub_type as u32),
        5 => {
            let direction = hubble::proto::flow::TrafficDirection::try_from(f.traffic_direction)
                .map_or("TRAFFIC_DIRECTION_UNKNOWN", |d| d.as_str_name());
            format!(
                "policy-verdict:{} {direction}",
                match_type_name(f.policy_match_type)
            )
        }
        // Socket LB translations, as hubble names the points.
        7 => match f.sock_xlate_point {
            1 => "pre-xlate-fwd",
            2 => "post-xlate-fwd",
            3 => "pre-xlate-rev",
            4 => "post-xlate-rev",
            _ => "UNKNOWN",
        }
        .into(),
        _ => "UNKNOWN".into(),
    }
}

/// Hubble's VERDICT column: policy verdicts read ALLOWED/DENIED.
#[cfg(test)]
pub fn verdict(f: &Flow) -> String {
    verdict_with(f, false)
}

/// The VERDICT column; with `policy_names` (`--print-policy-names`), a
/// policy verdict names the rules behind it as hubble does: ` BY name
/// (kind), ...`, for rules that have both.
pub fn verdict_with(f: &Flow, policy_names: bool) -> String {
    let v = Verdict::try_from(f.verdict).unwrap_or(Verdict::Unknown);
    let policy_verdict = f.event_type.is_some_and(|e| e.r#type == 5);
    let egress = f.traffic_direction == TrafficDirection::Egress as i32;
    let ingress = f.traffic_direction == TrafficDirection::Ingress as i32;
    let by = |egress_rules: &[Policy], ingress_rules: &[Policy]| -> String {
        let rules = match (policy_names, egress, ingress) {
            (true, true, _) => egress_rules,
            (true, _, true) => ingress_rules,
            _ => &[],
        };
        let named: Vec<String> = rules
            .iter()
            .filter(|p| !p.kind.is_empty() && !p.name.is_empty())
            .map(|p| format!("{} ({})", p.name, p.kind))
            .collect();
        if named.is_empty() {
            String::new()
        } else {
            format!(" BY {}", named.join(", "))
        }
    };
    match v {
        Verdict::Forwarded | Verdict::Redirected if policy_verdict => {
            "ALLOWED".to_string() + &by(&f.egress_allowed_by, &f.ingress_allowed_by)
        }
        Verdict::Dropped | Verdict::Error if policy_verdict => {
            "DENIED".to_string() + &by(&f.egress_denied_by, &f.ingress_denied_by)
        }
        Verdict::Audit if policy_verdict => "AUDITED".into(),
        v => v.as_str_name().into(),
    }
}

/// One `-o compact` line (without the newline).
#[cfg(test)]
pub fn compact(f: &Flow, utc_offset: i64) -> String {
    compact_with(f, utc_offset, false)
}

/// `compact`, with policy names in the verdict when asked.
pub fn compact_with(f: &Flow, utc_offset: i64, policy_names: bool) -> String {
    let (mut src, mut dst) = host_names(f);
    let mut src_id = identity(f.source.as_ref().map_or(0, |e| e.identity));
    let mut dst_id = identity(f.destination.as_ref().map_or(0, |e| e.identity));
    let arrow = match f.is_reply {
        None => "<>",
        Some(true) => {
            std::mem::swap(&mut src, &mut dst);
            std::mem::swap(&mut src_id, &mut dst_id);
            "<-"
        }
        Some(false) => "->",
    };
    format!(
        "{}: {src} {src_id} {arrow} {dst} {dst_id} {} {} ({})",
        stamp_milli(f.time.as_ref(), utc_offset),
        flow_type(f),
        verdict_with(f, policy_names),
        f.summary
    )
}

pub const TABLE_HEADER: [&str; 6] = [
    "TIMESTAMP",
    "SOURCE",
    "DESTINATION",
    "TYPE",
    "VERDICT",
    "SUMMARY",
];

/// One `-o table` row, with policy names in the verdict when asked.
pub fn table_row_with(f: &Flow, utc_offset: i64, policy_names: bool) -> [String; 6] {
    let (src, dst) = host_names(f);
    [
        stamp_milli(f.time.as_ref(), utc_offset),
        src,
        dst,
        flow_type(f),
        verdict_with(f, policy_names),
        f.summary.clone(),
    ]
}

/// A lost-events notice, as Hubble's compact printer writes it.
pub fn lost(l: &LostEvent) -> String {
    let source = LostEventSource::try_from(l.source)
        .map_or("UNKNOWN_LOST_EVENT_SOURCE", |s| s.as_str_name());
    format!(
        "EVENTS LOST: {source} CPU({}) {}",
        l.cpu.unwrap_or_default(),
        l.num_events_lost
    )
}

/// Turns responses into output text, remembering whether the table's
/// header is out.
pub struct Printer {
    pub output: Output,
    /// Seconds east of UTC for a given time, for timestamps.
    pub utc_offset: fn(i64) -> i64,
    rows: Vec<[String; 6]>,
    /// Print table rows as they come (following) instead of aligning all.
    pub streaming: bool,
    /// `--print-policy-names`.
    pub policy_names: bool,
    header_done: bool,
}

impl Printer {
    pub fn new(output: Output, utc_offset: fn(i64) -> i64, streaming: bool) -> Self {
        Printer {
            output,
            utc_offset,
            rows: Vec::new(),
            streaming,
            policy_names: false,
            header_done: false,
        }
    }

    /// Text for stdout and for stderr (lost events) of one response.
    #[cfg(test)]
    pub fn response(&mut self, r: &GetFlowsResponse) -> Result<(String, String), String> {
        let mut out = Vec::new();
        let err = self.write_response(r, &mut out)?;
        let out = String::from_utf8(out).map_err(|e| e.to_string())?;
        Ok((out, err))
    }

    /// [`Printer::response`] appending its stdout text to `out` (JSON is
    /// written there directly, no line of its own per flow); returns the
    /// stderr text.
    pub fn write_response(
        &mut self,
        r: &GetFlowsResponse,
        out: &mut Vec<u8>,
    ) -> Result<String, String> {
        use hubble::proto::observer::get_flows_response::ResponseTypes;
        let json_line = |out: &mut Vec<u8>, value: &dyn erased::Json| {
            value.write_to(out).map_err(|e| e.to_string())?;
            out.push(b'\n');
            Ok::<_, String>(String::new())
        };
        if self.output == Output::Jsonpb {
            return json_line(out, r);
        }
        match &r.response_types {
            Some(ResponseTypes::Flow(f)) if self.output == Output::Json => json_line(out, &**f),
            Some(ResponseTypes::Flow(f)) => {
                out.extend_from_slice(self.flow(f)?.as_bytes());
                Ok(String::new())
            }
            Some(ResponseTypes::LostEvents(l)) => Ok(lost(l) + "\n"),
            _ => Ok(String::new()),
        }
    }

    fn flow(&mut self, f: &Flow) -> Result<String, String> {
        let offset = (self.utc_offset)(f.time.map_or(0, |t| t.seconds));
        Ok(match self.output {
            Output::Compact => compact_with(f, offset, self.policy_names) + "\n",
            Output::Json => serde_json::to_string(f).map_err(|e| e.to_string())? + "\n",
            Output::Jsonpb => unreachable!("handled with the response"),
            Output::Table => {
                let row = table_row_with(f, offset, self.policy_names);
                if !self.streaming {
                    self.rows.push(row);
                    return Ok(String::new());
                }
                let mut t = Table::new();
                t.row(TABLE_HEADER);
                t.row(row);
                let text = t.render();
                let mut lines = text.lines();
                let header = lines.next().unwrap_or_default();
                let mut out = String::new();
                if !std::mem::replace(&mut self.header_done, true) {
                    out += header;
                    out.push('\n');
                }
                for l in lines {
                    out += l;
                    out.push('\n');
                }
                out
            }
        })
    }

    /// What is left to print when the stream ends: the aligned table.
    pub fn finish(&mut self) -> String {
        if self.output != Output::Table || self.streaming || self.rows.is_empty() {
            return String::new();
        }
        let mut t = Table::new();
        t.row(TABLE_HEADER);
        for r in self.rows.drain(..) {
            t.row(r);
        }
        t.render()
    }
}

/// Serialising either a response or a flow through one closure.
mod erased {
    pub trait Json {
        fn write_to(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
    }

    impl<T: serde::Serialize> Json for T {
        fn write_to(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
            serde_json::to_writer(out, self)
        }
    }
}

#[cfg(test)]
mod tests;
