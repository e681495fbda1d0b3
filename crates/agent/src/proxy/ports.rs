//! Proxy ports: one per listener (endpoint, direction, port), stable for as
//! long as the listener exists and across agent restarts (persisted), so the
//! running proxy and the pinned policy maps keep agreeing.

use std::collections::BTreeMap;

use policy::{Direction, Listener};
use serde::{Deserialize, Serialize};

/// Cilium's proxy port range.
pub const FIRST: u16 = 10000;
pub const LAST: u16 = 20000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Vec<Assignment>", from = "Vec<Assignment>")]
pub struct ProxyPorts {
    /// (endpoint, direction, port) -> proxy port.
    assigned: BTreeMap<(u16, Direction, u16), u16>,
}

/// The state file's form (JSON maps need string keys).
#[derive(Serialize, Deserialize)]
struct Assignment {
    endpoint: u16,
    direction: Direction,
    port: u16,
    proxy_port: u16,
}

impl From<ProxyPorts> for Vec<Assignment> {
    fn from(ports: ProxyPorts) -> Self {
        ports
            .assigned
            .into_iter()
            .map(|((endpoint, direction, port), proxy_port)| Assignment {
                endpoint,
                direction,
                port,
                proxy_port,
            })
            .collect()
    }
}

impl From<Vec<Assignment>> for ProxyPorts {
    fn from(list: Vec<Assignment>) -> Self {
        ProxyPorts {
            assigned: list
                .into_iter()
                .map(|a| ((a.endpoint, a.direction, a.port), a.proxy_port))
                .collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("no free proxy port left in {FIRST}-{LAST}")]
pub struct Exhausted;

impl ProxyPorts {
    /// The proxy ports of an endpoint's listeners: kept when already
    /// assigned, new ones for new listeners (only ports `is_free` accepts:
    /// the datapath hands connections to whoever listens on the port); the
    /// endpoint's other ports are released.
    pub fn assign(
        &mut self,
        endpoint: u16,
        listeners: &[Listener],
        is_free: impl Fn(u16) -> bool,
    ) -> Result<BTreeMap<(Direction, u16), u16>, Exhausted> {
        let wanted: Vec<(Direction, u16)> =
            listeners.iter().map(|l| (l.direction, l.port)).collect();
        self.assigned
            .retain(|(ep, dir, port), _| *ep != endpoint || wanted.contains(&(*dir, *port)));
        let mut out = BTreeMap::new();
        for (direction, port) in wanted {
            let key = (endpoint, direction, port);
            let proxy_port = match self.assigned.get(&key) {
                Some(p) => *p,
                None => {
                    let p = self.free_port(&is_free).ok_or(Exhausted)?;
                    self.assigned.insert(key, p);
                    p
                }
            };
            out.insert((direction, port), proxy_port);
        }
        Ok(out)
    }

    pub fn release_endpoint(&mut self, endpoint: u16) {
        self.assigned.retain(|(ep, _, _), _| *ep != endpoint);
    }

    pub fn is_empty(&self) -> bool {
        self.assigned.is_empty()
    }

    fn free_port(&self, is_free: impl Fn(u16) -> bool) -> Option<u16> {
        let used: std::collections::BTreeSet<u16> = self.assigned.values().copied().collect();
        (FIRST..=LAST).find(|p| !used.contains(p) && is_free(*p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::L7Parser;

    fn listener(direction: Direction, port: u16) -> Listener {
        Listener {
            direction,
            port,
            parser: L7Parser::Http,
        }
    }

    fn any(_: u16) -> bool {
        true
    }

    #[test]
    fn ports_taken_by_others_are_skipped() {
        let mut ports = ProxyPorts::default();
        let got = ports
            .assign(1, &[listener(Direction::Ingress, 80)], |p| p != FIRST)
            .unwrap();
        assert_eq!(got[&(Direction::Ingress, 80)], FIRST + 1);
    }

    #[test]
    fn ports_are_stable_and_released() {
        let mut ports = ProxyPorts::default();
        let a = ports
            .assign(1, &[listener(Direction::Ingress, 80)], any)
            .unwrap();
        assert_eq!(a[&(Direction::Ingress, 80)], FIRST);
        let b = ports
            .assign(
                2,
                &[
                    listener(Direction::Ingress, 80),
                    listener(Direction::Egress, 9092),
                ],
                any,
            )
            .unwrap();
        assert_eq!(
            b.values().copied().collect::<Vec<_>>(),
            vec![FIRST + 1, FIRST + 2]
        );
        // Re-assigning keeps the port; dropping a listener frees its port.
        let again = ports
            .assign(1, &[listener(Direction::Ingress, 80)], any)
            .unwrap();
        assert_eq!(again, a);
        ports.assign(1, &[], any).unwrap();
        let c = ports
            .assign(3, &[listener(Direction::Ingress, 8080)], any)
            .unwrap();
        assert_eq!(c[&(Direction::Ingress, 8080)], FIRST);
        // Round-trips through the state file format.
        let json = serde_json::to_string(&ports).unwrap();
        assert_eq!(serde_json::from_str::<ProxyPorts>(&json).unwrap(), ports);
    }
}
