//! Flow visibility, as Hubble offers it: monitor events become Hubble
//! `flow.Flow`s (`convert`), kept in a bounded ring (`ring`), selected by
//! Hubble's flow filters (`filter`) and served through Cilium's Observer gRPC
//! API (`server`) to the `hubble` CLI, and counted for Prometheus
//! (`metrics`).
//!
//! This crate never reads the datapath: the agent hands it events its
//! monitor hub already produced and named. Conversion and filters are pure.

pub mod convert;
pub mod filter;
pub mod metrics;
pub mod names;
pub mod ring;
pub mod server;
pub mod shared_flow;
pub mod timestamp;

/// The generated protobuf types, under Cilium's package names.
pub mod proto {
    pub mod flow {
        tonic::include_proto!("flow");
        include!(concat!(env!("OUT_DIR"), "/flow.serde.rs"));
    }
    pub mod relay {
        tonic::include_proto!("relay");
        include!(concat!(env!("OUT_DIR"), "/relay.serde.rs"));
    }
    pub mod observer {
        tonic::include_proto!("observer");
        include!(concat!(env!("OUT_DIR"), "/observer.serde.rs"));
    }
    pub mod health {
        tonic::include_proto!("grpc.health.v1");
    }
}

pub use convert::{to_flow, to_flow_with, PodRef, Pods, Sides};
pub use filter::FlowFilters;
pub use metrics::FlowMetrics;
pub use ring::FlowRing;
pub use server::{serve_tcp, serve_unix, Observer};
pub use shared_flow::SharedFlow;

/// Cilium's default for `--hubble-event-buffer-capacity`.
pub const DEFAULT_CAPACITY: usize = 4095;
