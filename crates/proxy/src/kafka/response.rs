//! Responses the proxy writes itself for denied requests: the response type
//! of the request, at its version, with TOPIC_AUTHORIZATION_FAILED for every
//! topic and partition it named and the request's correlation id, so the
//! client sees an authorization error instead of a dropped connection.

use super::request::{
    KafkaRequest, FETCH, LIST_OFFSETS, METADATA, OFFSET_COMMIT, OFFSET_FETCH, PRODUCE,
};
use super::wire::Writer;
use super::{is_flexible, TOPIC_AUTHORIZATION_FAILED};

const ERROR: i16 = TOPIC_AUTHORIZATION_FAILED;

/// The whole frame (size prefix included), or `None` for request types the
/// proxy cannot answer (the caller then closes the connection).
pub fn denied_response(request: &KafkaRequest) -> Option<Vec<u8>> {
    let v = request.api_version;
    let flexible = is_flexible(request.api_key, v);
    let mut w = Writer::new(flexible);
    w.i32(request.correlation_id);
    w.tags(); // response header v1 in flexible versions
    match request.api_key {
        PRODUCE => produce(&mut w, request, v),
        FETCH if v <= 12 => fetch(&mut w, request, v),
        LIST_OFFSETS => list_offsets(&mut w, request, v),
        METADATA => metadata(&mut w, request, v),
        OFFSET_COMMIT => offset_commit(&mut w, request, v),
        OFFSET_FETCH if v <= 7 => offset_fetch(&mut w, request, v),
        _ => return None,
    }
    w.tags();
    let mut frame = (w.buf.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&w.buf);
    Some(frame)
}

/// Writes `[topic, [partition...]]`, `partition` writing each entry after
/// its index.
fn topics(w: &mut Writer, request: &KafkaRequest, partition: impl Fn(&mut Writer)) {
    w.array_len(Some(request.topics.len()));
    for topic in &request.topics {
        w.string(Some(&topic.name));
        w.array_len(Some(topic.partitions.len()));
        for index in &topic.partitions {
            w.i32(*index);
            partition(w);
            w.tags();
        }
        w.tags();
    }
}

fn produce(w: &mut Writer, request: &KafkaRequest, v: i16) {
    topics(w, request, |w| {
        w.i16(ERROR).i64(-1); // error, base_offset
        if v >= 2 {
            w.i64(-1); // log_append_time_ms
        }
        if v >= 5 {
            w.i64(-1); // log_start_offset
        }
        if v >= 8 {
            w.array_len(Some(0)).string(None); // record_errors, error_message
        }
    });
    if v >= 1 {
        w.i32(0); // throttle_time_ms
    }
}

fn fetch(w: &mut Writer, request: &KafkaRequest, v: i16) {
    if v >= 1 {
        w.i32(0); // throttle_time_ms
    }
    if v >= 7 {
        w.i16(0).i32(0); // error_code, session_id
    }
    topics(w, request, |w| {
        w.i16(ERROR).i64(-1); // error, high_watermark
        if v >= 4 {
            w.i64(-1); // last_stable_offset
        }
        if v >= 5 {
            w.i64(-1); // log_start_offset
        }
        if v >= 4 {
            w.array_len(None); // aborted_transactions
        }
        if v >= 11 {
            w.i32(-1); // preferred_read_replica
        }
        w.array_len(Some(0)); // records: empty bytes (same encoding as an empty array)
    });
}

fn list_offsets(w: &mut Writer, request: &KafkaRequest, v: i16) {
    if v >= 2 {
        w.i32(0); // throttle_time_ms
    }
    topics(w, request, |w| {
        w.i16(ERROR);
        if v == 0 {
            w.array_len(Some(0)); // old_style_offsets
        } else {
            w.i64(-1).i64(-1); // timestamp, offset
        }
        if v >= 4 {
            w.i32(-1); // leader_epoch
        }
    });
}

fn metadata(w: &mut Writer, request: &KafkaRequest, v: i16) {
    if v >= 3 {
        w.i32(0); // throttle_time_ms
    }
    w.array_len(Some(0)); // brokers
    if v >= 2 {
        w.string(None); // cluster_id
    }
    if v >= 1 {
        w.i32(-1); // controller_id
    }
    w.array_len(Some(request.topics.len()));
    for topic in &request.topics {
        w.i16(ERROR).string(Some(&topic.name));
        if v >= 10 {
            w.i64(0).i64(0); // topic_id
        }
        if v >= 1 {
            w.i8(0); // is_internal
        }
        w.array_len(Some(0)); // partitions
        if v >= 8 {
            w.i32(i32::MIN); // topic_authorized_operations
        }
        w.tags();
    }
    if (8..=10).contains(&v) {
        w.i32(i32::MIN); // cluster_authorized_operations
    }
}

fn offset_commit(w: &mut Writer, request: &KafkaRequest, v: i16) {
    if v >= 3 {
        w.i32(0); // throttle_time_ms
    }
    topics(w, request, |w| {
        w.i16(ERROR);
    });
}

fn offset_fetch(w: &mut Writer, request: &KafkaRequest, v: i16) {
    if v >= 3 {
        w.i32(0); // throttle_time_ms
    }
    topics(w, request, |w| {
        w.i64(-1); // committed_offset
        if v >= 5 {
            w.i32(-1); // committed_leader_epoch
        }
        w.string(Some("")).i16(ERROR); // metadata, error_code
    });
    if v >= 2 {
        w.i16(0); // group error_code
    }
}
