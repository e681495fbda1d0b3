//! The kernel side: veth pair, addresses, routes and neighbour entries,
//! made with iproute2's `ip` (see `ip.rs` for why) and, for the container
//! side, from a thread that has joined the container's network namespace.

pub mod handoff;
pub mod ip;
pub mod netns;
pub mod veth;
