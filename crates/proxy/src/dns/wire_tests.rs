use super::*;
use crate::dns::answer::summarize;

/// A response to `build_query(id, qname, A)` with `records` as answers;
/// record owner "" means a pointer to the question name.
fn response(id: u16, qname: &str, records: &[(&str, u16, u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = build_query(id, qname, TYPE_A);
    out[2] |= 0x80; // QR
    out[3] |= 0x80; // RA
    out[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
    for (owner, rtype, ttl, rdata) in records {
        if owner.is_empty() {
            out.extend_from_slice(&[0xc0, 0x0c]);
        } else {
            encode_name(owner, &mut out);
        }
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }
    out
}

fn name_rdata(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_name(name, &mut out);
    out
}

#[test]
fn a_query_parses_to_its_header_and_question() {
    let query = build_query(0x1234, "Allowed.Test.", TYPE_AAAA);
    let message = parse(&query).unwrap();
    assert_eq!(message.header.id, 0x1234);
    assert!(!message.header.is_response());
    assert!(message.header.recursion_desired());
    assert_eq!(message.header.opcode(), 0);
    assert_eq!(
        message.questions,
        [Question {
            name: "Allowed.Test".into(),
            qtype: TYPE_AAAA,
            qclass: CLASS_IN
        }]
    );
    assert!(message.answers.is_empty());
    assert_eq!(message.question_end, query.len());
}

#[test]
fn answers_decode_compressed_names_and_skip_other_types() {
    let bytes = response(
        7,
        "www.example.com",
        &[
            ("", TYPE_CNAME, 300, vec![3, b'c', b'd', b'n', 0xc0, 0x10]),
            ("cdn.example.com", TYPE_A, 60, vec![192, 0, 2, 1]),
            ("cdn.example.com", 15, 60, vec![0, 10, 0]),
            (
                "cdn.example.com",
                TYPE_AAAA,
                30,
                vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            ),
        ],
    );
    let message = parse(&bytes).unwrap();
    assert!(message.header.is_response());
    assert_eq!(message.answers.len(), 4);
    assert_eq!(message.answers[0].name, "www.example.com");
    assert_eq!(
        message.answers[0].data,
        RecordData::Cname("cdn.example.com".into())
    );
    assert_eq!(
        message.answers[1].data,
        RecordData::A([192, 0, 2, 1].into())
    );
    assert_eq!(message.answers[2].data, RecordData::Other);
    let summary = summarize(&message);
    assert_eq!(summary.name, "www.example.com");
    assert_eq!(summary.cnames, ["cdn.example.com"]);
    assert_eq!(
        summary.ips,
        [
            "192.0.2.1".parse::<std::net::IpAddr>().unwrap(),
            "2001:db8::1".parse().unwrap()
        ]
    );
    assert_eq!(summary.ttl, 30);
}

#[test]
fn records_off_the_cname_chain_are_ignored_and_cname_loops_end() {
    let bytes = response(
        1,
        "a.test",
        &[
            ("", TYPE_CNAME, 20, name_rdata("b.test")),
            ("b.test", TYPE_CNAME, 100, name_rdata("a.test")),
            ("other.test", TYPE_A, 1, vec![10, 0, 0, 9]),
            ("B.TEST.", TYPE_A, 50, vec![10, 0, 0, 1]),
        ],
    );
    let summary = summarize(&parse(&bytes).unwrap());
    assert_eq!(summary.cnames, ["b.test"]);
    assert_eq!(
        summary.ips,
        ["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(summary.ttl, 20);
    let no_ips = summarize(&parse(&response(1, "a.test", &[])).unwrap());
    assert_eq!((no_ips.ips.len(), no_ips.ttl), (0, 0));
}

#[test]
fn compression_loops_and_forward_pointers_are_errors() {
    let mut looped = build_query(1, "x", TYPE_A);
    looped.truncate(HEADER_LEN);
    looped.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    assert_eq!(parse(&looped), Err(WireError::BadPointer(12)));
    let mut forward = build_query(1, "x", TYPE_A);
    forward.truncate(HEADER_LEN);
    forward.extend_from_slice(&[0xc0, 0x12, 0, 1, 0, 1, 1, b'a', 0]);
    assert_eq!(parse(&forward), Err(WireError::BadPointer(12)));
    // a -> pointer back into the same name.
    let mut inner = build_query(1, "x", TYPE_A);
    inner.truncate(HEADER_LEN);
    inner.extend_from_slice(&[1, b'a', 0xc0, 0x0c, 0, 1, 0, 1]);
    assert_eq!(parse(&inner), Err(WireError::BadPointer(14)));
    let mut reserved = build_query(1, "x", TYPE_A);
    reserved[HEADER_LEN] = 0x41;
    assert!(matches!(parse(&reserved), Err(WireError::BadLabel(12))));
}

#[test]
fn names_longer_than_255_bytes_are_errors() {
    let long = vec!["a".repeat(63); 4].join(".");
    let query = build_query(1, &long, TYPE_A);
    assert_eq!(parse(&query), Err(WireError::NameTooLong(12)));
    let fits = vec!["a".repeat(63); 3].join(".") + "." + &"b".repeat(61);
    assert!(parse(&build_query(1, &fits, TYPE_A)).is_ok());
}

#[test]
fn dots_and_odd_bytes_inside_labels_are_escaped() {
    let mut query = build_query(1, "x", TYPE_A);
    query.truncate(HEADER_LEN);
    query.extend_from_slice(&[3, b'a', b'.', b'b', 2, b'\\', 0x07, 0, 0, 1, 0, 1]);
    let message = parse(&query).unwrap();
    assert_eq!(message.questions[0].name, r"a\.b.\\\007");
}

#[test]
fn bad_record_data_is_an_error() {
    let short_a = response(1, "a.test", &[("", TYPE_A, 1, vec![1, 2, 3])]);
    assert!(matches!(parse(&short_a), Err(WireError::BadRdata(_))));
    let mut cname = name_rdata("b.test");
    cname.push(0);
    let long_cname = response(1, "a.test", &[("", TYPE_CNAME, 1, cname)]);
    assert!(matches!(parse(&long_cname), Err(WireError::BadRdata(_))));
    let mut huge_ttl = response(1, "a.test", &[("", TYPE_A, 0x8000_0000, vec![1, 2, 3, 4])]);
    assert_eq!(parse(&huge_ttl).unwrap().answers[0].ttl, 0);
    // More answers announced than present.
    huge_ttl[7] = 2;
    assert!(matches!(parse(&huge_ttl), Err(WireError::Truncated(_))));
}

#[test]
fn error_responses_echo_id_question_and_rd() {
    let mut query = build_query(0xbeef, "denied.test", TYPE_A);
    query[2] |= 0x08; // opcode 1, to see it copied
    let message = parse(&query).unwrap();
    let refused = error_response(&query, &message, RCODE_REFUSED);
    let parsed = parse(&refused).unwrap();
    assert_eq!(parsed.header.id, 0xbeef);
    assert!(parsed.header.is_response());
    assert!(parsed.header.recursion_desired());
    assert_eq!(parsed.header.flags & 0x0080, 0x0080, "RA set");
    assert_eq!(parsed.header.opcode(), 1);
    assert_eq!(parsed.header.rcode(), RCODE_REFUSED);
    assert_eq!(parsed.questions, message.questions);
    assert_eq!(&refused[HEADER_LEN..], &query[HEADER_LEN..]);

    let mut no_rd = build_query(2, "denied.test", TYPE_A);
    no_rd[2] &= !0x01;
    let nxdomain = error_response(&no_rd, &parse(&no_rd).unwrap(), RCODE_NXDOMAIN);
    let parsed = parse(&nxdomain).unwrap();
    assert!(!parsed.header.recursion_desired());
    assert_eq!(parsed.header.rcode(), RCODE_NXDOMAIN);
}

/// xorshift64*: reproducible pseudo-random bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn exercise(bytes: &[u8]) {
    if let Ok(message) = parse(bytes) {
        let _ = summarize(&message);
        let answer = error_response(bytes, &message, RCODE_REFUSED);
        assert!(
            parse(&answer).is_ok(),
            "error answer to {bytes:?} must parse"
        );
    }
}

#[test]
fn random_truncated_and_mutated_input_never_panics() {
    let valid = response(
        9,
        "www.example.com",
        &[
            ("", TYPE_CNAME, 300, vec![3, b'c', b'd', b'n', 0xc0, 0x10]),
            ("cdn.example.com", TYPE_A, 60, vec![192, 0, 2, 1]),
            ("", TYPE_A, 60, vec![192, 0, 2, 2]),
        ],
    );
    for len in 0..valid.len() {
        assert!(parse(&valid[..len]).is_err(), "prefix of {len} bytes");
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..50_000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        exercise(&bytes);
    }
    for _ in 0..50_000 {
        let mut bytes = valid.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            bytes[at] = match rng.below(3) {
                0 => rng.next() as u8,
                1 => 0xc0,
                _ => bytes[at] ^ (1 << rng.below(8)),
            };
        }
        bytes.truncate(HEADER_LEN + rng.below(bytes.len()));
        exercise(&bytes);
    }
}

#[test]
fn type_names() {
    assert_eq!(type_name(TYPE_A), "A");
    assert_eq!(type_name(TYPE_AAAA), "AAAA");
    assert_eq!(type_name(999), "TYPE999");
}
