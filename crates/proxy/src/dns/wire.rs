//! The DNS wire format (RFC 1035 section 4) as far as the proxy needs it:
//! the header, the questions, and the answer records (A, AAAA and CNAME
//! decoded, every other type skipped by its length), with the authority and
//! additional sections walked for well-formedness. Names may be compressed;
//! a compression pointer must point before the label sequence it interrupts,
//! so decoding always terminates. Every malformed input is an `Err`: the
//! parser indexes nothing it has not bounds-checked.
//!
//! Builders: the error answer for a denied query (REFUSED or NXDOMAIN) and a
//! plain query (tests and tools).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const HEADER_LEN: usize = 12;
/// Longest name on the wire, length bytes included (RFC 1035 2.3.4).
pub const MAX_NAME_LEN: usize = 255;

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;
pub const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_REFUSED: u8 = 5;

const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("shorter than a DNS header ({0} bytes)")]
    ShortHeader(usize),
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("name at byte {0}: compression pointer does not point backwards")]
    BadPointer(usize),
    #[error("name at byte {0} is longer than 255 bytes")]
    NameTooLong(usize),
    #[error("name at byte {0}: reserved label type")]
    BadLabel(usize),
    #[error("record data at byte {0} does not fit its type")]
    BadRdata(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    pub fn truncated(&self) -> bool {
        self.flags & FLAG_TC != 0
    }

    pub fn recursion_desired(&self) -> bool {
        self.flags & FLAG_RD != 0
    }

    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Presentation form without the trailing dot, case as sent (see
    /// `read_name` for escaping).
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    /// Any other type (or class), skipped.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub data: RecordData,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub questions: Vec<Question>,
    pub answers: Vec<Record>,
    /// Where the question section ends (an error answer echoes the bytes
    /// before it, so compressed questions stay valid).
    pub question_end: usize,
}

fn be16(buf: &[u8], at: usize) -> Result<u16, WireError> {
    match buf.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(WireError::Truncated(at)),
    }
}

fn be32(buf: &[u8], at: usize) -> Result<u32, WireError> {
    match buf.get(at..at + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(WireError::Truncated(at)),
    }
}

pub fn parse_header(buf: &[u8]) -> Result<Header, WireError> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::ShortHeader(buf.len()));
    }
    Ok(Header {
        id: be16(buf, 0)?,
        flags: be16(buf, 2)?,
        qdcount: be16(buf, 4)?,
        ancount: be16(buf, 6)?,
        nscount: be16(buf, 8)?,
        arcount: be16(buf, 10)?,
    })
}

/// Parses a whole message. Bytes after the last record are ignored.
pub fn parse(buf: &[u8]) -> Result<Message, WireError> {
    let header = parse_header(buf)?;
    let mut pos = HEADER_LEN;
    let mut questions = Vec::new();
    for _ in 0..header.qdcount {
        let (name, end) = read_name(buf, pos)?;
        questions.push(Question {
            name,
            qtype: be16(buf, end)?,
            qclass: be16(buf, end + 2)?,
        });
        pos = end + 4;
    }
    let question_end = pos;
    let mut answers = Vec::new();
    for _ in 0..header.ancount {
        let (record, end) = read_record(buf, pos)?;
        answers.push(record);
        pos = end;
    }
    for _ in 0..u32::from(header.nscount) + u32::from(header.arcount) {
        pos = read_record(buf, pos)?.1;
    }
    Ok(Message {
        header,
        questions,
        answers,
        question_end,
    })
}

fn read_record(buf: &[u8], at: usize) -> Result<(Record, usize), WireError> {
    let (name, pos) = read_name(buf, at)?;
    let rtype = be16(buf, pos)?;
    let class = be16(buf, pos + 2)?;
    let ttl = be32(buf, pos + 4)?;
    let rdlength = usize::from(be16(buf, pos + 8)?);
    let start = pos + 10;
    let end = start + rdlength;
    let rdata = buf.get(start..end).ok_or(WireError::Truncated(start))?;
    let data = match (rtype, class) {
        (TYPE_A, CLASS_IN) => {
            let octets: [u8; 4] = rdata.try_into().map_err(|_| WireError::BadRdata(start))?;
            RecordData::A(Ipv4Addr::from(octets))
        }
        (TYPE_AAAA, CLASS_IN) => {
            let octets: [u8; 16] = rdata.try_into().map_err(|_| WireError::BadRdata(start))?;
            RecordData::Aaaa(Ipv6Addr::from(octets))
        }
        (TYPE_CNAME, _) => {
            let (target, name_end) = read_name(buf, start)?;
            if name_end != end {
                return Err(WireError::BadRdata(start));
            }
            RecordData::Cname(target)
        }
        _ => RecordData::Other,
    };
    // RFC 2181 8: a TTL with the top bit set counts as zero.
    let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
    Ok((
        Record {
            name,
            rtype,
            class,
            ttl,
            data,
        },
        end,
    ))
}

/// Decodes the name at `at`; returns it and the offset just past it where
/// it starts (past the first pointer when compressed). Labels are joined by
/// `.` without a trailing one (the root is ""); a `.` or `\` inside a label
/// and bytes outside printable ASCII are escaped as `dig` does (`\.`, `\\`,
/// `\DDD`), so no label can pass for two.
pub fn read_name(buf: &[u8], at: usize) -> Result<(String, usize), WireError> {
    let mut name = String::new();
    let mut pos = at;
    // A pointer must land past the header and before the label sequence it
    // is part of: segment starts strictly decrease, so there is no loop.
    let mut segment_start = at;
    let mut end = None;
    let mut wire_len = 0usize;
    loop {
        let len = *buf.get(pos).ok_or(WireError::Truncated(pos))?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                return Ok((name, end.unwrap_or(pos + 1)));
            }
            0x00 => {
                let len = usize::from(len);
                let label = buf
                    .get(pos + 1..pos + 1 + len)
                    .ok_or(WireError::Truncated(pos + 1))?;
                wire_len += len + 1;
                // The final root byte needs room too.
                if wire_len + 1 > MAX_NAME_LEN {
                    return Err(WireError::NameTooLong(at));
                }
                if !name.is_empty() {
                    name.push('.');
                }
                push_label(&mut name, label);
                pos += 1 + len;
            }
            0xc0 => {
                let low = *buf.get(pos + 1).ok_or(WireError::Truncated(pos + 1))?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                if target < HEADER_LEN || target >= segment_start {
                    return Err(WireError::BadPointer(pos));
                }
                end.get_or_insert(pos + 2);
                segment_start = target;
                pos = target;
            }
            _ => return Err(WireError::BadLabel(pos)),
        }
    }
}

fn push_label(name: &mut String, label: &[u8]) {
    for &byte in label {
        match byte {
            b'.' | b'\\' => {
                name.push('\\');
                name.push(char::from(byte));
            }
            0x21..=0x7e => name.push(char::from(byte)),
            _ => {
                let _ = write!(name, "\\{byte:03}");
            }
        }
    }
}

/// The answer to a query the proxy will not forward: same id and opcode,
/// the question section echoed, RD copied, QR and RA set, no records.
pub fn error_response(query: &[u8], message: &Message, rcode: u8) -> Vec<u8> {
    let header = message.header;
    let flags = FLAG_QR
        | (u16::from(header.opcode()) << 11)
        | (header.flags & FLAG_RD)
        | FLAG_RA
        | u16::from(rcode & 0xf);
    // `message` is `query` parsed; should it not be, no question is echoed.
    let questions = query
        .get(HEADER_LEN..message.question_end)
        .filter(|_| header.qdcount as usize == message.questions.len());
    let mut out = Vec::with_capacity(message.question_end.max(HEADER_LEN));
    out.extend_from_slice(&header.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    let qdcount = if questions.is_some() {
        header.qdcount
    } else {
        0
    };
    out.extend_from_slice(&qdcount.to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(questions.unwrap_or_default());
    out
}

/// Appends `name` (dotted, trailing dot optional, no escapes) in wire form.
/// Labels longer than 63 bytes are cut (this is for names we make up).
pub fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() {
            continue;
        }
        let bytes = &label.as_bytes()[..label.len().min(63)];
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.push(0);
}

/// A standard query (RD set) for one name.
pub fn build_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(name, &mut out);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// The mnemonic of a record type, `TYPEnn` for the ones not listed.
pub fn type_name(rtype: u16) -> String {
    let name = match rtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        other => return format!("TYPE{other}"),
    };
    name.to_string()
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
