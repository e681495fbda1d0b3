//! Compiles the Observer API's protos (Cilium's field numbers, see proto/):
//! the server and a client (the CLI's `cilium flows`), plus serde impls in
//! protobuf's JSON mapping with proto field names, which is what Cilium's
//! `hubble observe -o json` prints (its flow type marshals with protojson,
//! `UseProtoNames: true`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/flow/flow.proto",
        "proto/relay/relay.proto",
        "proto/observer/observer.proto",
        "proto/grpc/health/v1/health.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Flow, relay and health messages, as the protos declare them.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Callers bring their own channel (the CLI dials a unix socket).
        .build_transport(false)
        // Timestamps serialise as RFC 3339 strings, protojson's form.
        .extern_path(".google.protobuf.Timestamp", "crate::timestamp::Timestamp")
        .compile_protos(&[protos[0], protos[1], protos[3]], &["proto"])?;
    // The Observer service and its messages on their own: their flow field
    // is the stored flow shared (crate::shared_flow), not a copy, and every
    // other flow and relay type is the one generated above.
    let descriptors = out.join("descriptors.bin");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .file_descriptor_set_path(&descriptors)
        .extern_path(".google.protobuf.Timestamp", "crate::timestamp::Timestamp")
        .extern_path(".flow.Flow", "crate::shared_flow::SharedFlow")
        .extern_path(".flow", "crate::proto::flow")
        .extern_path(".relay", "crate::proto::relay")
        .compile_protos(&[protos[2]], &["proto"])?;
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptors)?)?
        .preserve_proto_field_names()
        .build(&[".flow", ".observer", ".relay"])?;
    Ok(())
}
