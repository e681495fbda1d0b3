//! One probe of a conformance case, written as a line of text so that tables
//! read like the traffic they describe:
//!
//! ```text
//! client -> web:80/tcp pass
//! ext -> web:53/udp drop
//! client -> host/tcp pass        (the host's listener; its port is chosen for it)
//! client -> web/icmp deny        (an echo request; `deny` = dropped by a deny rule)
//! ```
//!
//! Peers are pod names, `host` (the node itself, the test process's network
//! namespace) and `ext`/`ext2` (two addresses outside the cluster).

use std::fmt;

/// Who sends or receives a probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    Pod(String),
    Host,
    /// The external addresses, by index (`ext` = 0, `ext2` = 1).
    External(usize),
}

impl Peer {
    fn parse(text: &str) -> Peer {
        match text {
            "host" => Peer::Host,
            "ext" => Peer::External(0),
            "ext2" => Peer::External(1),
            pod => Peer::Pod(pod.to_string()),
        }
    }

    pub fn pod_name(&self) -> Option<&str> {
        match self {
            Peer::Pod(name) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Pod(name) => f.write_str(name),
            Peer::Host => f.write_str("host"),
            Peer::External(0) => f.write_str("ext"),
            Peer::External(n) => write!(f, "ext{}", n + 1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP echo request (type 8).
    Icmp,
}

impl Proto {
    /// The IP protocol number, as in monitor events.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
        }
    }
}

/// What the real packet must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expect {
    /// The exchange completes.
    Pass,
    /// Dropped by policy (no allow, or a deny).
    Drop,
    /// Dropped by an explicit deny rule (`Policy denied by denylist`).
    Deny,
}

impl Expect {
    pub fn passes(self) -> bool {
        self == Expect::Pass
    }
}

/// One line of a case's probe list, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Probe {
    pub from: Peer,
    pub to: Peer,
    pub proto: Proto,
    /// `None` for ICMP and for the host's listener.
    pub port: Option<u16>,
    pub expect: Expect,
}

impl Probe {
    /// Parses `FROM -> TO[:PORT]/PROTO EXPECT`; a malformed line is a bug in
    /// the table, so it panics naming the line.
    pub fn parse(line: &str) -> Probe {
        let fail = |why: &str| -> ! { panic!("probe {line:?}: {why}") };
        let words: Vec<&str> = line.split_whitespace().collect();
        let [from, "->", target, expect] = words[..] else {
            fail("expected `FROM -> TO[:PORT]/PROTO pass|drop|deny`")
        };
        let (dest, proto) = target
            .split_once('/')
            .unwrap_or_else(|| fail("missing /tcp, /udp or /icmp"));
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "icmp" => Proto::Icmp,
            other => fail(&format!("unknown protocol {other:?}")),
        };
        let (to, port) = match dest.split_once(':') {
            Some((to, port)) => (
                to,
                Some(
                    port.parse::<u16>()
                        .unwrap_or_else(|_| fail(&format!("bad port {port:?}"))),
                ),
            ),
            None => (dest, None),
        };
        let expect = match expect {
            "pass" => Expect::Pass,
            "drop" => Expect::Drop,
            "deny" => Expect::Deny,
            other => fail(&format!("unknown expectation {other:?}")),
        };
        let probe = Probe {
            from: Peer::parse(from),
            to: Peer::parse(to),
            proto,
            port,
            expect,
        };
        match (&probe.to, proto, port) {
            (_, Proto::Icmp, Some(_)) => fail("ICMP has no port"),
            (Peer::Host, Proto::Tcp, None) => {}
            (Peer::Host, _, _) => fail("the host only listens on TCP, at a port of its choosing"),
            (_, Proto::Tcp | Proto::Udp, None) => fail("TCP and UDP need a port"),
            _ => {}
        }
        probe
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.from, self.to)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        };
        let expect = match self.expect {
            Expect::Pass => "pass",
            Expect::Drop => "drop",
            Expect::Deny => "deny",
        };
        write!(f, "/{proto} {expect}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_table_syntax() {
        for line in [
            "client -> web:80/tcp pass",
            "ext2 -> web:53/udp drop",
            "client -> host/tcp pass",
            "client -> web/icmp deny",
        ] {
            assert_eq!(Probe::parse(line).to_string(), line);
        }
        let p = Probe::parse("ext -> web:8080/tcp drop");
        assert_eq!(p.from, Peer::External(0));
        assert_eq!(p.to, Peer::Pod("web".into()));
        assert_eq!(
            (p.proto, p.port, p.expect),
            (Proto::Tcp, Some(8080), Expect::Drop)
        );
    }

    #[test]
    #[should_panic(expected = "TCP and UDP need a port")]
    fn rejects_a_port_less_tcp_probe_to_a_pod() {
        Probe::parse("client -> web/tcp pass");
    }
}
