//! The agent's Kubernetes front door. It connects to the API server, keeps
//! the Cilium CRDs installed, watches the objects a node needs, and turns
//! them into the inputs the REST API also feeds: endpoint labels, policy
//! rules, statuses to write back. It never touches the datapath; the agent
//! wires what this crate yields into the same paths as `cilium policy
//! import` and the CNI plugin.

pub mod cilium_objects;
pub mod connect;
pub mod crds;
pub mod error;
pub mod identities;
pub mod pod_labels;
pub mod policies;
pub mod services;
pub mod status;
pub mod watch;

pub use connect::{connect, ConnectOptions};
pub use error::K8sError;
pub use kube::{self, Client};
pub use pod_labels::{identity_labels, PodKey};
pub use policies::{PolicyKey, PolicyKind, PolicyObject};
pub use watch::{watch, Change};

/// Objects the agent reads, re-exported so the agent needs no direct
/// dependency on the generated API types.
pub mod api {
    pub use k8s_openapi::api::core::v1::{Namespace, Node, NodeSpec, Pod, Service};
    pub use k8s_openapi::api::discovery::v1::EndpointSlice;
    pub use k8s_openapi::api::networking::v1::NetworkPolicy;
}
