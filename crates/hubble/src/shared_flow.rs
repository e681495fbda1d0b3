//! The flow inside a `GetFlowsResponse`: the stored flow itself, shared,
//! not a copy. Every following client's response points at the ring's
//! `Arc<Flow>`, so sending a flow costs its encoding only, never a deep
//! copy of its strings and labels (build.rs maps `.flow.Flow` to this type
//! in observer.proto's messages only).

use std::ops::Deref;
use std::sync::Arc;

use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::proto::flow::Flow;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedFlow(pub Arc<Flow>);

impl Deref for SharedFlow {
    type Target = Flow;

    fn deref(&self) -> &Flow {
        &self.0
    }
}

impl From<Flow> for SharedFlow {
    fn from(flow: Flow) -> Self {
        SharedFlow(Arc::new(flow))
    }
}

impl From<Arc<Flow>> for SharedFlow {
    fn from(flow: Arc<Flow>) -> Self {
        SharedFlow(flow)
    }
}

/// The wire form is the flow's own: the same bytes a `Flow` field holds.
impl Message for SharedFlow {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.0.encode_raw(buf)
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        // Decoding (the CLI) owns its flow: make_mut copies nothing then.
        Arc::make_mut(&mut self.0).merge_field(tag, wire_type, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }

    fn clear(&mut self) {
        self.0 = Arc::default();
    }
}

impl serde::Serialize for SharedFlow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for SharedFlow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Flow::deserialize(d).map(SharedFlow::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::flow::Ip;
    use crate::proto::observer::{get_flows_response::ResponseTypes, GetFlowsResponse};

    fn flow() -> Flow {
        Flow {
            ip: Some(Ip {
                source: "10.0.0.1".into(),
                destination: "10.0.0.2".into(),
                ..Default::default()
            }),
            node_name: "node-a".into(),
            ..Default::default()
        }
    }

    /// The bytes on the wire are what a response holding a plain `Flow`
    /// field 1 would carry, and they decode back to the same flow.
    #[test]
    fn encodes_as_the_flow_field_and_decodes_back() {
        let shared = Arc::new(flow());
        let response = GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(SharedFlow(shared.clone()))),
            node_name: "node-a".into(),
            time: None,
        };
        let bytes = response.encode_to_vec();
        // Field 1, length-delimited, then the flow's own encoding.
        let inner = shared.encode_to_vec();
        assert_eq!(bytes[0], (1 << 3) | 2);
        assert_eq!(usize::from(bytes[1]), inner.len());
        assert_eq!(&bytes[2..2 + inner.len()], &inner[..]);
        let back = GetFlowsResponse::decode(&bytes[..]).unwrap();
        assert_eq!(back, response);
        // Sending shared the ring's flow rather than copying it.
        assert_eq!(Arc::strong_count(&shared), 2);
    }

    #[test]
    fn json_is_the_flows() {
        let shared = SharedFlow::from(flow());
        let json = serde_json::to_string(&shared).unwrap();
        assert_eq!(json, serde_json::to_string(&flow()).unwrap());
        let back: SharedFlow = serde_json::from_str(&json).unwrap();
        assert_eq!(back, shared);
    }
}
