use super::*;
use crate::kafka::response::denied_response;
use crate::kafka::wire::Writer;

/// A request frame payload: header v1/v2 then `body`.
fn payload(api_key: i16, version: i16, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let flexible = is_flexible(api_key, version);
    let mut w = Writer::new(false);
    w.i16(api_key).i16(version).i32(42).string(Some("rdkafka"));
    if flexible {
        w.uvarint(0);
    }
    let mut b = Writer::new(flexible);
    body(&mut b);
    w.buf.extend_from_slice(&b.buf);
    w.buf
}

#[test]
fn produce_v7_topics_partitions_and_acks() {
    let bytes = payload(PRODUCE, 7, |w| {
        w.string(None).i16(-1).i32(1000);
        w.array_len(Some(2));
        w.string(Some("a")).array_len(Some(1)).i32(0).i32(3);
        w.buf.extend_from_slice(b"abc");
        w.string(Some("b"))
            .array_len(Some(2))
            .i32(1)
            .i32(-1)
            .i32(2)
            .i32(0);
    });
    let request = parse_request(&bytes).unwrap();
    assert_eq!(
        (request.api_key, request.api_version, request.correlation_id),
        (0, 7, 42)
    );
    assert_eq!(request.client_id.as_deref(), Some("rdkafka"));
    assert_eq!(request.topic_names, vec!["a", "b"]);
    assert_eq!(request.topics[1].partitions, vec![1, 2]);
    assert_eq!(request.acks, Some(-1));
    assert!(request.expects_response());
}

#[test]
fn flexible_produce_and_metadata() {
    let bytes = payload(PRODUCE, 9, |w| {
        w.string(None).i16(1).i32(1000);
        w.array_len(Some(1));
        w.string(Some("t"))
            .array_len(Some(1))
            .i32(0)
            .uvarint(1)
            .tags()
            .tags();
        w.tags();
    });
    assert_eq!(parse_request(&bytes).unwrap().topic_names, vec!["t"]);
    let bytes = payload(METADATA, 9, |w| {
        w.array_len(Some(1)).string(Some("m")).tags();
        w.i8(1).i8(0).i8(0).tags();
    });
    assert_eq!(parse_request(&bytes).unwrap().topic_names, vec!["m"]);
    let all = payload(METADATA, 4, |w| {
        w.array_len(None).i8(1);
    });
    let all = parse_request(&all).unwrap();
    assert!(all.topics.is_empty() && all.topics_known);
}

#[test]
fn fetch_v11_and_offset_requests() {
    let bytes = payload(FETCH, 11, |w| {
        w.i32(-1).i32(500).i32(1).i32(1 << 20).i8(0).i32(0).i32(-1);
        w.array_len(Some(1)).string(Some("f")).array_len(Some(1));
        w.i32(0).i32(-1).i64(0).i64(-1).i32(1 << 20);
        w.array_len(Some(0)).string(Some(""));
    });
    let request = parse_request(&bytes).unwrap();
    assert_eq!(
        request.topics,
        vec![TopicPartitions {
            name: "f".into(),
            partitions: vec![0]
        }]
    );
    let list = payload(LIST_OFFSETS, 2, |w| {
        w.i32(-1)
            .i8(0)
            .array_len(Some(1))
            .string(Some("l"))
            .array_len(Some(1))
            .i32(3)
            .i64(-1);
    });
    assert_eq!(parse_request(&list).unwrap().topics[0].partitions, vec![3]);
    let commit = payload(OFFSET_COMMIT, 7, |w| {
        w.string(Some("g")).i32(1).string(Some("m")).string(None);
        w.array_len(Some(1))
            .string(Some("c"))
            .array_len(Some(1))
            .i32(0)
            .i64(5)
            .i32(-1)
            .string(None);
    });
    assert_eq!(parse_request(&commit).unwrap().topic_names, vec!["c"]);
    let fetch_offsets = payload(OFFSET_FETCH, 7, |w| {
        w.string(Some("g"))
            .array_len(Some(1))
            .string(Some("o"))
            .array_len(Some(2))
            .i32(0)
            .i32(1)
            .i8(0);
    });
    assert_eq!(
        parse_request(&fetch_offsets).unwrap().topics[0].partitions,
        vec![0, 1]
    );
}

#[test]
fn other_keys_and_garbage() {
    let versions = payload(API_VERSIONS, 3, |w| {
        w.string(Some("librdkafka")).string(Some("2.0")).tags();
    });
    let request = parse_request(&versions).unwrap();
    assert!(request.topics.is_empty() && request.topics_known);
    let create = payload(19, 4, |w| {
        w.i32(0);
    });
    assert!(!parse_request(&create).unwrap().topics_known);
    assert!(parse_request(&[0, 0, 0]).is_err());
    assert!(parse_request(&[0, 0, 0, 7, 0, 0, 0, 1, 0, 0]).is_err());
    let huge = payload(PRODUCE, 3, |w| {
        w.string(None).i16(1).i32(1).i32(i32::MAX);
    });
    assert!(parse_request(&huge).is_err());
}

#[test]
fn denied_produce_response_names_every_partition() {
    let bytes = payload(PRODUCE, 7, |w| {
        w.string(None).i16(-1).i32(1000);
        w.array_len(Some(1))
            .string(Some("a"))
            .array_len(Some(1))
            .i32(2)
            .i32(0);
    });
    let request = parse_request(&bytes).unwrap();
    let frame = denied_response(&request).unwrap();
    let mut expected = Writer::new(false);
    expected
        .i32(42)
        .array_len(Some(1))
        .string(Some("a"))
        .array_len(Some(1));
    expected.i32(2).i16(29).i64(-1).i64(-1).i64(-1).i32(0);
    assert_eq!(&frame[4..], &expected.buf[..]);
    assert_eq!(
        u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
        frame.len() - 4
    );
    let versions = payload(API_VERSIONS, 3, |w| {
        w.string(Some("x")).string(Some("1")).tags();
    });
    assert!(denied_response(&parse_request(&versions).unwrap()).is_none());
}
