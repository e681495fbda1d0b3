//! `cilium_events`: the ring buffer of drop, trace and policy-verdict
//! notifications (`struct event` and `struct event6` in bpf/lib/maps.h).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    ops::Deref,
    os::fd::{AsRawFd, RawFd},
};

use aya::maps::{Array, MapData, PerCpuArray, RingBuf};

use crate::{maps, BpfRoot, DatapathError};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Event {
    pub timestamp: u64,
    pub r#type: u8,
    /// Drop reason or trace observation point.
    pub subtype: u8,
    pub ep_id: u16,
    pub ifindex: u32,
    pub src_identity: u32,
    pub dst_identity: u32,
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    /// Network byte order.
    pub sport: u16,
    pub dport: u16,
    pub protocol: u8,
    pub tcp_flags: u8,
    /// 1 = egress, 0 = ingress.
    pub dir: u8,
    pub verdict: u8,
    pub match_type: u8,
    pub ct_state: u8,
    /// 0: IPv4 (`saddr`/`daddr`); [`EVENT_FAMILY_IPV6`]: the head of an
    /// [`Event6`].
    pub family: u8,
    pub pad: u8,
    pub length: u32,
    pub cpu: u32,
}

/// `Event::family` of an IPv6 packet's event.
pub const EVENT_FAMILY_IPV6: u8 = 6;

/// An IPv6 packet's event (`struct event6`): the event, its IPv4 addresses
/// zero, then the IPv6 addresses.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Event6 {
    pub ev: Event,
    pub saddr6: [u8; 16],
    pub daddr6: [u8; 16],
}

/// A socket LB translation (`struct trace_sock_event`, type
/// [`EventKind::TraceSock`]): the destination before or after it, in the
/// event (or its IPv6 part), and what names the socket.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceSockEvent {
    pub ev: Event6,
    pub sock_cookie: u64,
    pub netns_cookie: u64,
    pub cgroup_id: u64,
}

/// Which socket a trace-sock event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockIds {
    pub sock_cookie: u64,
    /// The socket's network namespace (`SO_NETNS_COOKIE` names the same).
    pub netns_cookie: u64,
    pub cgroup_id: u64,
}

/// One event as read from the ring: the event every packet has and, for an
/// IPv6 packet, its addresses. Derefs to the [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingEvent {
    pub event: Event,
    /// Source and destination of an IPv6 packet.
    pub ipv6: Option<(Ipv6Addr, Ipv6Addr)>,
    /// A trace-sock event's socket.
    pub sock: Option<SockIds>,
}

impl RingEvent {
    pub fn src_ip(&self) -> IpAddr {
        match self.ipv6 {
            Some((src, _)) => src.into(),
            None => Ipv4Addr::from(self.event.saddr).into(),
        }
    }

    pub fn dst_ip(&self) -> IpAddr {
        match self.ipv6 {
            Some((_, dst)) => dst.into(),
            None => Ipv4Addr::from(self.event.daddr).into(),
        }
    }

    /// Decodes one ring record: an `event`, an `event6` when its family
    /// says so, a `trace_sock_event` when its type does (a short one is
    /// not an event).
    pub fn from_bytes(bytes: &[u8]) -> Option<RingEvent> {
        let event = Event::from_bytes(bytes)?;
        if event.kind() == EventKind::TraceSock {
            return Self::trace_sock(event, bytes);
        }
        if event.family != EVENT_FAMILY_IPV6 {
            return Some(RingEvent {
                event,
                ipv6: None,
                sock: None,
            });
        }
        if bytes.len() < std::mem::size_of::<Event6>() {
            return None;
        }
        // SAFETY: length checked; Event6 is plain data valid for any bytes.
        let ev6 = unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const Event6) };
        Some(RingEvent {
            event,
            ipv6: Some((ev6.saddr6.into(), ev6.daddr6.into())),
            sock: None,
        })
    }

    fn trace_sock(event: Event, bytes: &[u8]) -> Option<RingEvent> {
        if bytes.len() < std::mem::size_of::<TraceSockEvent>() {
            return None;
        }
        // SAFETY: length checked; TraceSockEvent is plain data valid for any bytes.
        let ts = unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const TraceSockEvent) };
        Some(RingEvent {
            event,
            ipv6: (event.family == EVENT_FAMILY_IPV6)
                .then(|| (ts.ev.saddr6.into(), ts.ev.daddr6.into())),
            sock: Some(SockIds {
                sock_cookie: ts.sock_cookie,
                netns_cookie: ts.netns_cookie,
                cgroup_id: ts.cgroup_id,
            }),
        })
    }
}

impl Deref for RingEvent {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Drop,
    Trace,
    PolicyVerdict,
    /// A socket LB translation; the subtype is the translation point.
    TraceSock,
    Unknown(u8),
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self.r#type {
            1 => EventKind::Drop,
            2 => EventKind::Trace,
            3 => EventKind::PolicyVerdict,
            4 => EventKind::TraceSock,
            other => EventKind::Unknown(other),
        }
    }

    fn from_bytes(bytes: &[u8]) -> Option<Event> {
        if bytes.len() < std::mem::size_of::<Event>() {
            return None;
        }
        // SAFETY: length checked; Event is plain data valid for any bytes.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const Event) })
    }
}

/// Drop reasons, as Cilium names them (its code, its text: Cilium's
/// monitor API table).
pub fn drop_reason_text(reason: u8) -> &'static str {
    match reason {
        0 => "Success",
        132 => "Invalid source ip",
        133 => "Policy denied",
        134 => "Invalid packet",
        135 => "CT: Truncated or invalid header",
        139 => "Unsupported L3 protocol",
        140 => "Missed tail call",
        141 => "Error writing to packet",
        147 => "Error retrieving tunnel key",
        150 => "Unknown L3 target address",
        156 => "Invalid IPv6 extension header",
        158 => "Service backend not found",
        160 => "No tunnel/encapsulation endpoint (datapath BUG!)",
        167 => "No mapping for NAT masquerade",
        169 => "FIB lookup failed",
        175 => "First logical datagram fragment not found",
        178 => "Socket lookup failed",
        179 => "Socket assign failed",
        180 => "Proxy redirection not supported for protocol",
        181 => "Policy denied by denylist",
        _ => "Unknown reason",
    }
}

/// Trace observation points, as Cilium names them.
pub fn observation_point_text(point: u8) -> &'static str {
    match point {
        0 => "to-endpoint",
        1 => "to-proxy",
        3 => "to-stack",
        4 => "to-overlay",
        5 => "from-endpoint",
        7 => "from-overlay",
        _ => "unknown",
    }
}

/// Socket translation points, as Cilium's Hubble prints them.
pub fn xlate_point_text(point: u8) -> &'static str {
    match point {
        1 => "pre-xlate-fwd",
        2 => "post-xlate-fwd",
        3 => "pre-xlate-rev",
        4 => "post-xlate-rev",
        _ => "unknown",
    }
}

pub fn match_type_text(match_type: u8) -> &'static str {
    match match_type {
        1 => "L3-L4",
        2 => "L3-Only",
        3 => "L4-Only",
        4 => "all",
        _ => "none",
    }
}

pub fn ct_state_text(state: u8) -> &'static str {
    match state {
        1 => "established",
        2 => "reply",
        3 => "related",
        _ => "new",
    }
}

/// Where the programs count events the ring had no room for.
pub const EVENTS_LOST_MAP: &str = "cilium_events_lost";

/// The switch that tells the programs whether to build events at all.
pub const EVENTS_WANTED_MAP: &str = "cilium_events_wanted";

/// Consumes the events ring. Poll its fd for readability, then drain.
pub struct EventReader {
    ring: RingBuf<MapData>,
    lost: PerCpuArray<MapData, u64>,
    wanted: Array<MapData, u32>,
}

impl EventReader {
    pub fn open(root: &BpfRoot) -> Result<Self, DatapathError> {
        let map = maps::open_pinned(root, maps::EVENTS_MAP)?;
        let ring = RingBuf::try_from(map).map_err(|e| DatapathError::map(maps::EVENTS_MAP, e))?;
        let lost = PerCpuArray::try_from(maps::open_pinned(root, EVENTS_LOST_MAP)?)
            .map_err(|e| DatapathError::map(EVENTS_LOST_MAP, e))?;
        let wanted = Array::try_from(maps::open_pinned(root, EVENTS_WANTED_MAP)?)
            .map_err(|e| DatapathError::map(EVENTS_WANTED_MAP, e))?;
        Ok(EventReader { ring, lost, wanted })
    }

    /// Turns the programs' events on (someone listens) or off.
    pub fn set_wanted(&mut self, wanted: bool) -> Result<(), DatapathError> {
        self.wanted
            .set(0, u32::from(wanted), 0)
            .map_err(|e| DatapathError::map(EVENTS_WANTED_MAP, e))
    }

    /// Events the programs could not write since the maps were created
    /// (all CPUs).
    pub fn lost_in_ring(&self) -> u64 {
        self.lost
            .get(&0, 0)
            .map(|per_cpu| per_cpu.iter().sum())
            .unwrap_or(0)
    }

    /// Every event waiting in the ring.
    pub fn drain(&mut self) -> Vec<RingEvent> {
        let mut out = Vec::new();
        self.drain_into(&mut out);
        out
    }

    /// [`EventReader::drain`] appending to `out`: a reader that drains
    /// often reuses one buffer instead of growing a new one each time.
    pub fn drain_into(&mut self, out: &mut Vec<RingEvent>) {
        while let Some(item) = self.ring.next() {
            if let Some(ev) = RingEvent::from_bytes(&item) {
                out.push(ev);
            }
        }
    }
}

impl AsRawFd for EventReader {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
        // SAFETY: T is one of the plain repr(C) event structs.
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
            .to_vec()
    }

    #[test]
    fn an_ipv4_event_keeps_its_size_and_addresses() {
        assert_eq!(std::mem::size_of::<Event>(), 56);
        let ev = Event {
            saddr: [10, 0, 0, 1],
            daddr: [10, 0, 0, 2],
            ..Default::default()
        };
        let got = RingEvent::from_bytes(&bytes_of(&ev)).unwrap();
        assert_eq!(got.ipv6, None);
        assert_eq!(got.src_ip().to_string(), "10.0.0.1");
        assert_eq!(got.dst_ip().to_string(), "10.0.0.2");
    }

    #[test]
    fn an_ipv6_event_carries_its_addresses_after_the_event() {
        let src: Ipv6Addr = "f00d::a0a:0:0:2".parse().unwrap();
        let dst: Ipv6Addr = "f00d::a0a:0:0:3".parse().unwrap();
        let ev6 = Event6 {
            ev: Event {
                family: EVENT_FAMILY_IPV6,
                dport: 8080u16.to_be(),
                ..Default::default()
            },
            saddr6: src.octets(),
            daddr6: dst.octets(),
        };
        let bytes = bytes_of(&ev6);
        let got = RingEvent::from_bytes(&bytes).unwrap();
        assert_eq!(got.src_ip(), IpAddr::from(src));
        assert_eq!(got.dst_ip(), IpAddr::from(dst));
        assert_eq!(u16::from_be(got.dport), 8080);
        // Cut short, it is no event rather than one with made-up addresses.
        assert_eq!(
            RingEvent::from_bytes(&bytes[..std::mem::size_of::<Event>()]),
            None
        );
    }
}
