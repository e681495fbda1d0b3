//! This node's networking outside the endpoints: the overlay device.

pub mod tunnel;
