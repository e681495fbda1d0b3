//! ICMP echo packets: building a request, and recognising the answer to it
//! among everything a raw ICMP socket receives (each raw socket sees every
//! ICMP packet the host gets, so the id, sequence and addresses decide).

use std::net::Ipv4Addr;

pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACHABLE: u8 = 3;
pub const ECHO_REQUEST: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;

const ICMP_HEADER_LEN: usize = 8;
const PROTO_ICMP: u8 = 1;

/// The Internet checksum (RFC 1071): one's complement of the one's
/// complement sum of the data as big-endian 16-bit words.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request with `payload`, checksum filled in (the kernel adds the
/// IP header on a raw ICMP socket).
pub fn echo_request(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = echo_message(ECHO_REQUEST, id, seq, payload);
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    packet
}

/// An echo message of `icmp_type` (ICMP and ICMPv6 share the layout), its
/// checksum left zero.
pub(crate) fn echo_message(icmp_type: u8, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(ICMP_HEADER_LEN + payload.len());
    packet.extend_from_slice(&[icmp_type, 0, 0, 0]);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// What a received datagram says about our echo request to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The echo reply from `target` with our id and sequence.
    Reply,
    /// An ICMP error about our request (the request is quoted inside it).
    Error {
        icmp_type: u8,
        code: u8,
        from: Ipv4Addr,
    },
}

/// Matches an IPv4 datagram as a raw ICMP socket delivers it (IP header
/// included) against our request; `None` for anything else.
pub fn match_answer(datagram: &[u8], target: Ipv4Addr, id: u16, seq: u16) -> Option<Answer> {
    let (src, _dst, icmp) = ipv4_payload(datagram, PROTO_ICMP)?;
    if icmp.len() < ICMP_HEADER_LEN || checksum(icmp) != 0 {
        return None;
    }
    let (icmp_type, code) = (icmp[0], icmp[1]);
    match icmp_type {
        ECHO_REPLY => (src == target && echo_ids(icmp) == (id, seq)).then_some(Answer::Reply),
        DEST_UNREACHABLE | TIME_EXCEEDED => {
            // The error quotes our request's IP header and at least the
            // first 8 bytes of its ICMP header.
            let (_, quoted_dst, quoted) = ipv4_payload(&icmp[ICMP_HEADER_LEN..], PROTO_ICMP)?;
            let ours = quoted_dst == target
                && quoted.len() >= ICMP_HEADER_LEN
                && quoted[0] == ECHO_REQUEST
                && echo_ids(quoted) == (id, seq);
            ours.then_some(Answer::Error {
                icmp_type,
                code,
                from: src,
            })
        }
        _ => None,
    }
}

/// A human name for an ICMP error.
pub fn describe_error(icmp_type: u8, code: u8) -> &'static str {
    match (icmp_type, code) {
        (DEST_UNREACHABLE, 0) => "network unreachable",
        (DEST_UNREACHABLE, 1) => "host unreachable",
        (DEST_UNREACHABLE, 3) => "port unreachable",
        (DEST_UNREACHABLE, 9 | 10 | 13) => "administratively prohibited",
        (DEST_UNREACHABLE, _) => "destination unreachable",
        (TIME_EXCEEDED, _) => "time to live exceeded",
        _ => "ICMP error",
    }
}

/// An echo message's (id, sequence); ICMP and ICMPv6 alike.
pub(crate) fn echo_ids(icmp: &[u8]) -> (u16, u16) {
    (
        u16::from_be_bytes([icmp[4], icmp[5]]),
        u16::from_be_bytes([icmp[6], icmp[7]]),
    )
}

/// (source, destination, payload) of an IPv4 datagram carrying `proto`.
/// The payload is cut to the datagram's total length when that is shorter
/// than what arrived; a quoted datagram may be truncated, which is fine.
fn ipv4_payload(datagram: &[u8], proto: u8) -> Option<(Ipv4Addr, Ipv4Addr, &[u8])> {
    let first = *datagram.first()?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < 20 || datagram.len() < header_len {
        return None;
    }
    if datagram[9] != proto {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let end = total.clamp(header_len, datagram.len());
    let src = Ipv4Addr::new(datagram[12], datagram[13], datagram[14], datagram[15]);
    let dst = Ipv4Addr::new(datagram[16], datagram[17], datagram[18], datagram[19]);
    Some((src, dst, &datagram[header_len..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 12);
    const ME: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);

    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut d = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, PROTO_ICMP, 0, 0];
        d[2..4].copy_from_slice(&total.to_be_bytes());
        d.extend_from_slice(&src.octets());
        d.extend_from_slice(&dst.octets());
        let sum = checksum(&d);
        d[10..12].copy_from_slice(&sum.to_be_bytes());
        d.extend_from_slice(payload);
        d
    }

    fn reply_to(request: &[u8]) -> Vec<u8> {
        let mut reply = request.to_vec();
        reply[0] = ECHO_REPLY;
        reply[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum(&reply);
        reply[2..4].copy_from_slice(&sum.to_be_bytes());
        reply
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 §3: the sum of these words is 0xddf2, its complement 0x220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), 0x220d);
        // An odd trailing byte counts as the high half of a word.
        assert_eq!(checksum(&[0x12]), !0x1200);
    }

    #[test]
    fn echo_request_layout_and_checksum() {
        let p = echo_request(0x1234, 7, b"hi!");
        assert_eq!(&p[..2], &[ECHO_REQUEST, 0]);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(&p[8..], b"hi!");
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
    }

    #[test]
    fn matches_only_our_reply_from_the_target() {
        let request = echo_request(42, 1, b"cilium-health");
        let reply = ipv4(TARGET, ME, &reply_to(&request));
        assert_eq!(match_answer(&reply, TARGET, 42, 1), Some(Answer::Reply));
        assert_eq!(match_answer(&reply, TARGET, 43, 1), None, "other id");
        assert_eq!(match_answer(&reply, TARGET, 42, 2), None, "other seq");
        assert_eq!(match_answer(&reply, ME, 42, 1), None, "other source");
        // Our own request looped back (pinging a local address) is no answer.
        assert_eq!(
            match_answer(&ipv4(ME, TARGET, &request), TARGET, 42, 1),
            None
        );
        let mut corrupt = reply.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        assert_eq!(match_answer(&corrupt, TARGET, 42, 1), None, "bad checksum");
        assert_eq!(match_answer(&reply[..24], TARGET, 42, 1), None, "truncated");
        assert_eq!(match_answer(&[], TARGET, 42, 1), None);
    }

    #[test]
    fn recognises_an_icmp_error_quoting_our_request() {
        let request = echo_request(42, 1, b"cilium-health");
        let quoted = ipv4(ME, TARGET, &request);
        let mut error = vec![DEST_UNREACHABLE, 1, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&quoted[..28]); // IP header + 8 bytes, as routers send
        let sum = checksum(&error);
        error[2..4].copy_from_slice(&sum.to_be_bytes());
        let router = Ipv4Addr::new(192, 168, 1, 1);
        let datagram = ipv4(router, ME, &error);
        assert_eq!(
            match_answer(&datagram, TARGET, 42, 1),
            Some(Answer::Error {
                icmp_type: DEST_UNREACHABLE,
                code: 1,
                from: router
            })
        );
        assert_eq!(match_answer(&datagram, TARGET, 41, 1), None);
        assert_eq!(
            match_answer(&datagram, Ipv4Addr::new(10, 0, 0, 1), 42, 1),
            None
        );
        assert_eq!(describe_error(DEST_UNREACHABLE, 1), "host unreachable");
    }
}
