//! SOCK flows: the socket load balancer's translations (Cilium's
//! trace-sock events, `hubble observe` prints them as `pre-xlate-fwd
//! TRACED` / `post-xlate-fwd TRANSLATED`). As in Cilium's sock parser the
//! source port is unknown (0), the verdict says before or after the
//! translation, and neither a direction nor a reply flag is claimed. The
//! agent has named the sides already, swapped on the reverse path (the
//! peer is then the source).

use api::models::MonitorEvent;

use crate::proto::flow::{layer4, Flow, FlowType, SocketTranslationPoint, Verdict};

pub(super) fn point(ev: &MonitorEvent) -> SocketTranslationPoint {
    match ev.sock.as_ref().map(|s| s.xlate_point.as_str()) {
        Some("pre-xlate-fwd") => SocketTranslationPoint::SockXlatePointPreDirectionFwd,
        Some("post-xlate-fwd") => SocketTranslationPoint::SockXlatePointPostDirectionFwd,
        Some("pre-xlate-rev") => SocketTranslationPoint::SockXlatePointPreDirectionRev,
        Some("post-xlate-rev") => SocketTranslationPoint::SockXlatePointPostDirectionRev,
        _ => SocketTranslationPoint::SockXlatePointUnknown,
    }
}

pub(super) fn finish(ev: &MonitorEvent, out: &mut Flow) {
    let point = point(ev);
    out.r#type = FlowType::Sock as i32;
    out.verdict = match point {
        SocketTranslationPoint::SockXlatePointPreDirectionFwd
        | SocketTranslationPoint::SockXlatePointPreDirectionRev => Verdict::Traced,
        SocketTranslationPoint::SockXlatePointPostDirectionFwd
        | SocketTranslationPoint::SockXlatePointPostDirectionRev => Verdict::Translated,
        SocketTranslationPoint::SockXlatePointUnknown => Verdict::Unknown,
    } as i32;
    out.sock_xlate_point = point as i32;
    out.socket_cookie = ev.sock.as_ref().map_or(0, |s| s.cookie);
    out.cgroup_id = ev.sock.as_ref().map_or(0, |s| s.cgroup_id);
    out.traffic_direction = 0;
    out.is_reply = None;
    if let Some(layer4::Protocol::Tcp(tcp)) = out.l4.as_mut().and_then(|l| l.protocol.as_mut()) {
        tcp.flags = None;
    }
    out.summary = match ev.protocol {
        6 => "TCP",
        17 => "UDP",
        _ => "Unknown",
    }
    .into();
}
