//! The crowd around the measured pods: endpoints with distinct labels (one
//! identity each) that carry no traffic. Each is a real veth pair, host
//! side in the node's namespace where the agent attaches its programs, the
//! other end parked in one shared namespace; no netns per filler, since no
//! packet ever enters them. Dropping [`Fillers`] deletes that namespace,
//! which takes every pair with it.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use api::{AddressPair, EndpointChangeRequest};
use testbed::bench::{signals, tools};
use testbed::{Agent, NetNs};

pub struct Fillers {
    /// Held for its `Drop`: deleting it removes every pair.
    _netns: NetNs,
    host_ifnames: Vec<String>,
    macs: Vec<(String, String)>,
}

/// How long registering the fillers took, one entry per endpoint.
pub struct Registration {
    pub each: Vec<Duration>,
    pub total: Duration,
    pub endpoint_ids: Vec<u16>,
}

impl Registration {
    /// Mean time of registrations `range` (e.g. the first or last 100).
    pub fn mean_ms(&self, range: std::ops::Range<usize>) -> f64 {
        let slice = &self.each[range.start.min(self.each.len())..range.end.min(self.each.len())];
        if slice.is_empty() {
            return 0.0;
        }
        slice.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3 / slice.len() as f64
    }
}

impl Fillers {
    /// `count` veth pairs named `cbf<pid hex><index>` (unique per run, so a
    /// previous run's pairs still being torn down by the kernel never clash).
    pub fn create(netns_name: &str, count: usize) -> Result<Fillers> {
        let netns = NetNs::create(netns_name)?;
        let tag = std::process::id() & 0xfffff;
        let mut batch = String::new();
        let mut host_ifnames = Vec::with_capacity(count);
        let mut macs = Vec::with_capacity(count);
        for i in 0..count {
            let host = format!("cbf{tag:05x}{i:04}");
            let (hi, lo) = ((i >> 8) as u8, i as u8);
            let host_mac = format!("02:cb:00:00:{hi:02x}:{lo:02x}");
            let peer_mac = format!("02:cb:01:00:{hi:02x}:{lo:02x}");
            batch.push_str(&format!(
                "link add {host} address {host_mac} type veth peer name p{i:04} address {peer_mac} netns {netns_name}\n"
            ));
            host_ifnames.push(host);
            macs.push((peer_mac, host_mac));
        }
        tools::run_with_stdin("ip", &["-batch", "-"], &batch)
            .with_context(|| format!("creating {count} filler veth pairs"))?;
        Ok(Fillers {
            _netns: netns,
            host_ifnames,
            macs,
        })
    }

    pub fn len(&self) -> usize {
        self.host_ifnames.len()
    }

    /// Registers every filler as an endpoint with labels
    /// `bench-role=filler`, `bench-filler=fNNNN`, and for the first
    /// `targets` also `bench-import=target`. Addresses come from
    /// `first_ip` upwards (claimed through the endpoint, as a CNI plugin
    /// that did its own IPAM would).
    pub fn register(
        &self,
        agent: &Agent,
        first_ip: Ipv4Addr,
        targets: usize,
    ) -> Result<Registration> {
        let client = agent.client();
        let start = Instant::now();
        let mut each = Vec::with_capacity(self.len());
        let mut endpoint_ids = Vec::with_capacity(self.len());
        for (i, ifname) in self.host_ifnames.iter().enumerate() {
            signals::check()?;
            let mut labels = vec![
                "k8s:bench-role=filler".to_string(),
                format!("k8s:bench-filler=f{i:04}"),
            ];
            if i < targets {
                labels.push("k8s:bench-import=target".to_string());
            }
            let ip = Ipv4Addr::from(u32::from(first_ip) + i as u32);
            let (mac, host_mac) = &self.macs[i];
            let request = EndpointChangeRequest {
                container_id: Some(format!("bench-filler-{i:04}")),
                container_name: Some(format!("filler-{i:04}")),
                interface_name: Some(ifname.clone()),
                mac: Some(mac.clone()),
                host_mac: Some(host_mac.clone()),
                addressing: AddressPair {
                    ipv4: Some(ip.to_string()),
                    ipv6: None,
                },
                labels,
                ..Default::default()
            };
            let t = Instant::now();
            let endpoint = client
                .endpoint_put(0, &request)
                .with_context(|| format!("registering filler {i} ({ifname}, {ip})"))?;
            each.push(t.elapsed());
            if endpoint.id == 0 {
                bail!("filler {i}: the agent answered without an endpoint id");
            }
            endpoint_ids.push(endpoint.id);
            if (i + 1) % 100 == 0 {
                eprintln!(
                    "  {} fillers registered in {:.1} s (last one {:.0} ms)",
                    i + 1,
                    start.elapsed().as_secs_f64(),
                    t.elapsed().as_secs_f64() * 1e3
                );
            }
        }
        Ok(Registration {
            each,
            total: start.elapsed(),
            endpoint_ids,
        })
    }
}
