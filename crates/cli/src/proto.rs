//! Protocol numbers as Cilium's tools spell them.

pub const ICMP: u8 = 1;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMPV6: u8 = 58;
pub const SCTP: u8 = 132;

/// Upper-case name used in maps (`TCP`, `UDP`, `ANY` for 0).
pub fn name(proto: u8) -> String {
    match proto {
        0 => "ANY".into(),
        ICMP => "ICMP".into(),
        TCP => "TCP".into(),
        UDP => "UDP".into(),
        ICMPV6 => "ICMPv6".into(),
        SCTP => "SCTP".into(),
        other => other.to_string(),
    }
}

/// The PORT/PROTO column of a policy map entry: `80/TCP`, `ANY/UDP` for
/// every port of one protocol, `ANY` for the L3-only wildcard.
pub fn port_proto(port: u16, proto: u8) -> String {
    match (port, proto) {
        (0, 0) => "ANY".into(),
        (0, p) => format!("ANY/{}", name(p)),
        (port, p) => format!("{port}/{}", name(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_proto_strings() {
        assert_eq!(port_proto(0, 0), "ANY");
        assert_eq!(port_proto(80, TCP), "80/TCP");
        assert_eq!(port_proto(53, UDP), "53/UDP");
        assert_eq!(port_proto(0, UDP), "ANY/UDP");
        assert_eq!(port_proto(8080, 0), "8080/ANY");
        assert_eq!(name(99), "99");
    }
}
