//! `cilium service update --id N --frontend IP:PORT --backends IP:PORT,...`:
//! creates or replaces a service. Addresses, weights and states are checked
//! here so typos fail before anything is sent; the protocol and the rest are
//! the agent's to judge, and its message is printed as it is.

use std::net::{IpAddr, Ipv6Addr};

use anyhow::{anyhow, bail, Result};
use api::{BackendAddress, Client, FrontendAddress, ServiceFlags, ServiceSpec};

use crate::output::emit;

#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// Identifier of the service (1-65535)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    id: u16,
    /// Frontend address, IP:PORT
    #[arg(long)]
    frontend: String,
    /// Backend addresses, IP:PORT[,IP:PORT...]
    #[arg(long, value_delimiter = ',')]
    backends: Vec<String>,
    /// Protocol of frontend and backends (tcp or udp)
    #[arg(long, default_value = "tcp")]
    protocol: String,
    /// Backend weights, one per backend, in the order of --backends (default 1 each)
    #[arg(long = "backend-weights", value_delimiter = ',')]
    backend_weights: Vec<u16>,
    /// Backend states, one per backend: active or maintenance (default active)
    #[arg(long, value_delimiter = ',')]
    states: Vec<String>,
    /// Service type shown by `service list` (or one of Cilium's --k8s-*
    /// and --local-redirect flags)
    #[arg(long = "type", default_value = "ClusterIP", group = "service_type")]
    kind: String,
    /// Set service as a k8s NodePort
    #[arg(long, group = "service_type")]
    k8s_node_port: bool,
    /// Set service as a k8s ExternalIPs
    #[arg(long, group = "service_type")]
    k8s_external: bool,
    /// Set service as a k8s LoadBalancer
    #[arg(long, group = "service_type")]
    k8s_load_balancer: bool,
    /// Set service as a k8s HostPort
    #[arg(long, group = "service_type")]
    k8s_host_port: bool,
    /// Set service as Local Redirect
    #[arg(long, group = "service_type")]
    local_redirect: bool,
}

impl UpdateArgs {
    /// The type Cilium's flags name, else `--type`.
    fn kind(&self) -> String {
        let by_flag = [
            (self.k8s_node_port, "NodePort"),
            (self.k8s_external, "ExternalIPs"),
            (self.k8s_load_balancer, "LoadBalancer"),
            (self.k8s_host_port, "HostPort"),
            (self.local_redirect, "LocalRedirect"),
        ];
        match by_flag.iter().find(|(set, _)| *set) {
            Some((_, kind)) => kind.to_string(),
            None => self.kind.clone(),
        }
    }
}

pub fn run(client: &Client, args: &UpdateArgs) -> Result<()> {
    let spec = build_spec(args).map_err(|e| anyhow!(e))?;
    match client.service_get(args.id) {
        Ok(_) => emit(&format!(
            "Updating existing service with id '{}'\n",
            args.id
        )),
        Err(e) if e.status() == Some(404) => {
            emit(&format!("Creating new service with id '{}'\n", args.id))
        }
        Err(e) => return Err(e.into()),
    }
    if let Err(e) = client.service_put(args.id, &spec) {
        bail!("Cannot add/update service: {e}");
    }
    emit(&format!(
        "Added service with {} backends\n",
        spec.backend_addresses.len()
    ));
    Ok(())
}

/// The request body for `args`, or what is wrong with them.
pub fn build_spec(args: &UpdateArgs) -> Result<ServiceSpec, String> {
    let (ip, port) = parse_ip_port("--frontend", &args.frontend)?;
    let n = args.backends.len();
    if !args.backend_weights.is_empty() && args.backend_weights.len() != n {
        return Err(format!(
            "--backend-weights has {} values for {n} backends: give one weight per backend",
            args.backend_weights.len()
        ));
    }
    if let Some(i) = args.backend_weights.iter().position(|w| *w == 0) {
        return Err(format!(
            "--backend-weights[{i}]: weight 0 is not allowed (use --states maintenance to stop new connections)"
        ));
    }
    if !args.states.is_empty() && args.states.len() != n {
        return Err(format!(
            "--states has {} values for {n} backends: give one state per backend",
            args.states.len()
        ));
    }
    let mut backends = Vec::with_capacity(n);
    for (i, text) in args.backends.iter().enumerate() {
        let (ip, port) = parse_ip_port(&format!("--backends[{i}]"), text)?;
        backends.push(BackendAddress {
            ip: ip.to_string(),
            port,
            weight: args.backend_weights.get(i).copied().unwrap_or(1),
            state: args
                .states
                .get(i)
                .map(|s| s.trim().to_ascii_lowercase())
                .unwrap_or_else(|| "active".into()),
        });
    }
    Ok(ServiceSpec {
        id: args.id as u32,
        frontend_address: FrontendAddress {
            ip: ip.to_string(),
            port,
            protocol: args.protocol.trim().to_ascii_uppercase(),
        },
        backend_addresses: backends,
        flags: ServiceFlags {
            kind: args.kind(),
            ..Default::default()
        },
    })
}

/// `10.96.0.1:80` → (10.96.0.1, 80), `[f00d::1]:80` → (f00d::1, 80) as
/// Cilium writes them; errors name the flag and the value.
pub fn parse_ip_port(flag: &str, text: &str) -> Result<(IpAddr, u16), String> {
    let text = text.trim();
    let (ip, port) = text.rsplit_once(':').ok_or_else(|| {
        format!("{flag} {text:?}: expected IP:PORT, e.g. 10.96.0.1:80 or [f00d::1]:80")
    })?;
    let ip: IpAddr = match ip.strip_prefix('[').and_then(|ip| ip.strip_suffix(']')) {
        Some(v6) => v6
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("{flag} {text:?}: {v6:?} is not an IPv6 address"))?
            .into(),
        None if ip.parse::<Ipv6Addr>().is_ok() => {
            return Err(format!(
            "{flag} {text:?}: an IPv6 address takes brackets before its port, e.g. [{ip}]:{port}"
        ))
        }
        None => ip
            .parse()
            .map_err(|_| format!("{flag} {text:?}: {ip:?} is not an IP address"))?,
    };
    let port: u16 =
        port.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
            format!("{flag} {text:?}: port {port:?} is not a number from 1 to 65535")
        })?;
    Ok((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cmd {
        #[command(flatten)]
        args: UpdateArgs,
    }

    fn parse(argv: &[&str]) -> Result<UpdateArgs, String> {
        Cmd::try_parse_from(std::iter::once("update").chain(argv.iter().copied()))
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    fn spec(argv: &[&str]) -> Result<ServiceSpec, String> {
        build_spec(&parse(argv)?)
    }

    #[test]
    fn builds_cilium_shaped_spec() {
        let s = spec(&[
            "--id",
            "5",
            "--frontend",
            "10.96.0.5:53",
            "--backends",
            "10.0.0.1:5353,10.0.0.2:5353",
            "--protocol",
            "udp",
            "--backend-weights",
            "1,3",
            "--states",
            "active,Maintenance",
        ])
        .unwrap();
        assert_eq!(s.id, 5);
        assert_eq!(s.frontend_address.ip, "10.96.0.5");
        assert_eq!(s.frontend_address.port, 53);
        assert_eq!(s.frontend_address.protocol, "UDP");
        assert_eq!(s.flags.kind, "ClusterIP");
        let b: Vec<_> = s
            .backend_addresses
            .iter()
            .map(|b| (b.ip.as_str(), b.port, b.weight, b.state.as_str()))
            .collect();
        assert_eq!(
            b,
            [
                ("10.0.0.1", 5353, 1, "active"),
                ("10.0.0.2", 5353, 3, "maintenance")
            ]
        );
    }

    #[test]
    fn ciliums_type_flags_set_the_type() {
        let base = ["--id", "1", "--frontend", "10.96.0.1:80"];
        let kind = |extra: &[&str]| {
            let argv: Vec<&str> = base.iter().chain(extra).copied().collect();
            spec(&argv).map(|s| s.flags.kind)
        };
        assert_eq!(kind(&[]).unwrap(), "ClusterIP");
        assert_eq!(kind(&["--k8s-node-port"]).unwrap(), "NodePort");
        assert_eq!(kind(&["--k8s-external"]).unwrap(), "ExternalIPs");
        assert_eq!(kind(&["--k8s-load-balancer"]).unwrap(), "LoadBalancer");
        assert_eq!(kind(&["--k8s-host-port"]).unwrap(), "HostPort");
        assert_eq!(kind(&["--local-redirect"]).unwrap(), "LocalRedirect");
        assert_eq!(kind(&["--type", "NodePort"]).unwrap(), "NodePort");
        assert!(kind(&["--k8s-node-port", "--k8s-external"]).is_err());
        assert!(kind(&["--k8s-node-port", "--type", "ClusterIP"]).is_err());
    }

    #[test]
    fn defaults_tcp_weight_one_active() {
        let s = spec(&[
            "--id",
            "1",
            "--frontend",
            "10.96.0.1:80",
            "--backends",
            "10.0.0.1:80",
        ])
        .unwrap();
        assert_eq!(s.frontend_address.protocol, "TCP");
        assert_eq!(s.backend_addresses[0].weight, 1);
        assert_eq!(s.backend_addresses[0].state, "active");
    }

    #[test]
    fn no_backends_and_unknown_protocols_are_left_to_the_agent() {
        let s = spec(&[
            "--id",
            "1",
            "--frontend",
            "10.96.0.1:80",
            "--protocol",
            "sctpx",
        ])
        .unwrap();
        assert!(s.backend_addresses.is_empty());
        assert_eq!(s.frontend_address.protocol, "SCTPX");
    }

    #[test]
    fn bad_addresses_name_flag_and_value() {
        let cases = [
            ("10.96.0.1", "--frontend \"10.96.0.1\": expected IP:PORT"),
            ("10.96.0:80", "\"10.96.0\" is not an IP address"),
            ("10.96.0.1:0", "port \"0\" is not a number from 1 to 65535"),
            ("10.96.0.1:65536", "port \"65536\""),
            ("10.96.0.1:http", "port \"http\""),
            (
                "fd00::1:80",
                "takes brackets before its port, e.g. [fd00::1]:80",
            ),
            ("[fd00::g]:80", "\"fd00::g\" is not an IPv6 address"),
        ];
        for (frontend, want) in cases {
            let err = spec(&[
                "--id",
                "1",
                "--frontend",
                frontend,
                "--backends",
                "10.0.0.1:80",
            ])
            .unwrap_err();
            assert!(err.contains(want), "{frontend}: {err:?} lacks {want:?}");
        }
        let err = spec(&[
            "--id",
            "1",
            "--frontend",
            "10.96.0.1:80",
            "--backends",
            "10.0.0.1:80,10.0.0.300:80",
        ])
        .unwrap_err();
        assert!(err.contains("--backends[1] \"10.0.0.300:80\""), "{err}");
    }

    #[test]
    fn ipv6_addresses_are_bracketed_as_cilium_writes_them() {
        let s = spec(&[
            "--id",
            "6",
            "--frontend",
            "[f00d::1]:80",
            "--backends",
            "[f00d::a0a:0:0:5]:8080",
        ])
        .unwrap();
        assert_eq!(s.frontend_address.ip, "f00d::1");
        assert_eq!(s.frontend_address.port, 80);
        assert_eq!(s.backend_addresses[0].ip, "f00d::a0a:0:0:5");
        assert_eq!(s.backend_addresses[0].port, 8080);
    }

    #[test]
    fn weights_and_states_must_match_backends() {
        let base = [
            "--id",
            "1",
            "--frontend",
            "10.96.0.1:80",
            "--backends",
            "10.0.0.1:80,10.0.0.2:80",
        ];
        let with = |extra: &[&str]| {
            let mut argv = base.to_vec();
            argv.extend_from_slice(extra);
            spec(&argv)
        };
        assert!(with(&["--backend-weights", "1"])
            .unwrap_err()
            .contains("one weight per backend"));
        assert!(with(&["--backend-weights", "1,0"])
            .unwrap_err()
            .contains("--backend-weights[1]"));
        assert!(with(&["--states", "active"])
            .unwrap_err()
            .contains("one state per backend"));
        assert!(
            with(&["--backend-weights", "1,x"]).is_err(),
            "clap rejects non-numbers"
        );
    }

    #[test]
    fn id_must_be_1_to_65535() {
        for id in ["0", "65536", "x"] {
            let err = parse(&["--id", id, "--frontend", "10.96.0.1:80"]).unwrap_err();
            assert!(err.contains("--id"), "{id}: {err}");
        }
        assert!(
            parse(&["--frontend", "10.96.0.1:80"]).is_err(),
            "--id is required"
        );
    }
}
