//! `docker-plugin` owns cilium-docker, Docker's libnetwork remote
//! `NetworkDriver` and `IpamDriver` backed by cilium-agent: `docker network
//! create -d cilium --ipam-driver cilium NET` and `docker run --net NET`
//! attach containers as Cilium endpoints, with the container's labels as
//! `container:` endpoint labels read from the Docker API.
//!
//! The protocol (`protocol`) is pure; the handlers (`ipam`, `network`) talk
//! to the agent's REST API and make veth pairs with cilium-cni's plumbing;
//! `settle` finishes an attachment once dockerd has moved the interface;
//! `server` serves it all on the plugin's unix socket. It must never touch
//! BPF maps (the agent owns the datapath), never change a container it did
//! not attach, and never answer dockerd with anything but the plugin
//! protocol's JSON.

pub mod docker_api;
pub mod driver;
pub mod error;
pub mod ipam;
pub mod network;
pub mod protocol;
pub mod server;
pub mod settle;

pub use driver::Driver;
pub use error::PluginError;
