//! `cilium service ...`: the services the agent balances (`/v1/service`).

mod delete;
mod get;
mod list;
mod update;

use std::process::ExitCode;

use anyhow::Result;
use api::{Client, Service};
use clap::Subcommand;

use crate::table::Table;

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Create or update a service
    Update(update::UpdateArgs),
    /// List services
    #[command(visible_alias = "ls")]
    List(list::ListArgs),
    /// Display service information
    Get(get::GetArgs),
    /// Delete a service
    Delete(delete::DeleteArgs),
}

pub fn run(client: &Client, cmd: ServiceCommand) -> Result<ExitCode> {
    match cmd {
        ServiceCommand::Update(args) => update::run(client, &args),
        ServiceCommand::List(args) => list::run(client, &args),
        ServiceCommand::Get(args) => get::run(client, &args),
        ServiceCommand::Delete(args) => delete::run(client, &args),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// Cilium's service table: ID, Frontend, Service Type, Backend, one
/// backend per line ("1 => 10.0.0.1:80/TCP (active)").
pub fn render(services: &[Service]) -> String {
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by_key(|s| s.spec.id);
    let mut t = Table::new();
    t.row(["ID", "Frontend", "Service Type", "Backend"]);
    for svc in sorted {
        let spec = &svc.spec;
        let proto = protocol_name(&spec.frontend_address.protocol);
        let frontend = format!(
            "{}/{proto}",
            host_port(&spec.frontend_address.ip, spec.frontend_address.port)
        );
        let kind = if spec.flags.kind.is_empty() {
            "ClusterIP".to_string()
        } else {
            spec.flags.kind.clone()
        };
        if spec.backend_addresses.is_empty() {
            t.row([spec.id.to_string(), frontend, kind, String::new()]);
            continue;
        }
        for (i, b) in spec.backend_addresses.iter().enumerate() {
            let state = if b.state.is_empty() {
                "active"
            } else {
                &b.state
            };
            let backend = format!(
                "{} => {}/{proto} ({state})",
                i + 1,
                host_port(&b.ip, b.port)
            );
            if i == 0 {
                t.row([spec.id.to_string(), frontend.clone(), kind.clone(), backend]);
            } else {
                t.row([String::new(), String::new(), String::new(), backend]);
            }
        }
    }
    t.render()
}

/// `10.96.0.1:80`, or `[f00d::1]:80` for an IPv6 address, as Cilium prints.
fn host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// "TCP" when the agent left the protocol out (its default).
fn protocol_name(protocol: &str) -> String {
    if protocol.is_empty() {
        "TCP".into()
    } else {
        protocol.to_ascii_uppercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::{BackendAddress, FrontendAddress, ServiceSpec};

    fn service(id: u32, frontend: &str, protocol: &str, backends: &[(&str, &str)]) -> Service {
        let (ip, port) = frontend.split_once(':').unwrap();
        let spec = ServiceSpec {
            id,
            frontend_address: FrontendAddress {
                ip: ip.into(),
                port: port.parse().unwrap(),
                protocol: protocol.into(),
            },
            backend_addresses: backends
                .iter()
                .map(|(addr, state)| {
                    let (ip, port) = addr.split_once(':').unwrap();
                    BackendAddress {
                        ip: ip.into(),
                        port: port.parse().unwrap(),
                        weight: 1,
                        state: state.to_string(),
                    }
                })
                .collect(),
            ..Default::default()
        };
        Service {
            status: api::ServiceStatus {
                realized: spec.clone(),
            },
            spec,
        }
    }

    #[test]
    fn one_backend_per_line_sorted_by_id() {
        let services = vec![
            service(7, "10.96.0.10:53", "UDP", &[("10.200.0.7:53", "active")]),
            service(
                1,
                "10.96.0.1:80",
                "TCP",
                &[
                    ("10.200.0.5:8080", "active"),
                    ("10.200.0.6:8080", "maintenance"),
                ],
            ),
        ];
        assert_eq!(
            render(&services),
            "ID   Frontend            Service Type   Backend\n\
             1    10.96.0.1:80/TCP    ClusterIP      1 => 10.200.0.5:8080/TCP (active)\n\
             \x20                                       2 => 10.200.0.6:8080/TCP (maintenance)\n\
             7    10.96.0.10:53/UDP   ClusterIP      1 => 10.200.0.7:53/UDP (active)\n"
        );
    }

    #[test]
    fn defaults_fill_missing_protocol_state_and_type() {
        let text = render(&[service(3, "10.96.0.3:443", "", &[("10.0.0.1:443", "")])]);
        assert!(
            text.contains("10.96.0.3:443/TCP   ClusterIP      1 => 10.0.0.1:443/TCP (active)"),
            "{text}"
        );
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let mut svc = service(4, "0:80", "TCP", &[("0:8080", "active")]);
        svc.spec.frontend_address.ip = "f00d::1".into();
        svc.spec.backend_addresses[0].ip = "f00d::a0a:0:0:5".into();
        let text = render(&[svc]);
        assert!(
            text.contains(
                "4    [f00d::1]:80/TCP   ClusterIP      1 => [f00d::a0a:0:0:5]:8080/TCP (active)"
            ),
            "{text}"
        );
    }

    #[test]
    fn empty_list_has_only_the_header() {
        assert_eq!(render(&[]), "ID   Frontend   Service Type   Backend\n");
    }
}
