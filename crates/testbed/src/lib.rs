//! `testbed` owns the single-node topology that end-to-end tests, the demo
//! and benches run on: a real `cilium-agent` process on private paths, pods
//! made of a network namespace and a veth pair registered through the REST
//! API (as a CNI plugin would), and traffic helpers that run inside a pod's
//! namespace.
//!
//! Every resource it creates (agent process, sockets, state and bpffs
//! directories, namespaces, links, routes, endpoints, IPs) is released by a
//! `Drop` guard, also when a test panics half-way. It must never touch
//! resources it did not create, and never reach into the agent's BPF maps or
//! state files: what it knows about the agent comes from the API and the CLI.
//! It needs root.

pub mod agent;
pub mod background;
pub mod bench;
pub mod cluster;
pub mod cmd;
pub mod conformance;
pub mod etcd;
pub mod http;
pub mod kubernetes;
pub mod monitor;
pub mod narrator;
pub mod netns;
pub mod pod;
pub mod runtime;
pub mod starwars;
pub mod traffic;
pub mod unique;
pub mod wait;

pub use agent::{find_binary, Agent, AgentOptions, AgentPaths};
pub use background::BackgroundProcess;
pub use http::HttpServer;
pub use monitor::{CliMonitor, Monitor};
pub use netns::NetNs;
pub use pod::Pod;
pub use traffic::{TcpServer, UdpServer};
pub use wait::eventually;
