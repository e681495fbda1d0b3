//! This node's networking outside the endpoints: forwarding, the node's
//! devices, the overlay device and the routing that delivers redirected
//! connections to the proxy.

pub mod forwarding;
pub mod host_device;
pub mod proxy_routing;
pub mod tunnel;
