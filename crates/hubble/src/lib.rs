//! Flow visibility, as Hubble offers it: monitor events become Hubble
//! `flow.Flow`s (`convert`), kept in a bounded ring (`ring`), selected by
//! Hubble's flow filters (`filter`) and served through Cilium's Observer gRPC
//! API (`server`) to the `hubble` CLI.
//!
//! This crate never reads the datapath: the agent hands it events its
//! monitor hub already produced and named. Conversion and filters are pure.

pub mod convert;
pub mod filter;
pub mod ring;
pub mod server;

/// The generated protobuf types, under Cilium's package names.
pub mod proto {
    pub mod flow {
        tonic::include_proto!("flow");
    }
    pub mod relay {
        tonic::include_proto!("relay");
    }
    pub mod observer {
        tonic::include_proto!("observer");
    }
    pub mod health {
        tonic::include_proto!("grpc.health.v1");
    }
}

pub use convert::{to_flow, PodRef, Pods};
pub use filter::FlowFilters;
pub use ring::FlowRing;
pub use server::{serve_tcp, serve_unix, Observer};

/// Cilium's default for `--hubble-event-buffer-capacity`.
pub const DEFAULT_CAPACITY: usize = 4095;
