//! `cilium node list`: Cilium's columns (Name, IPv4 Address, Endpoint CIDR,
//! IPv6 Address, Endpoint CIDR, Source) from `GET /v1/cluster/nodes`. This
//! node's source is `local`, the others were learned from the kvstore.

use anyhow::{Context, Result};
use api::{Client, ClusterNodeStatus};

use crate::output::{emit, to_json, OutputFormat};
use crate::table::Table;

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, args: &ListArgs) -> Result<()> {
    let status = client
        .cluster_nodes()
        .context("cannot get the node list (GET /v1/cluster/nodes)")?;
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&status)?),
        None => emit(&render(&status)),
    }
    Ok(())
}

pub fn render(status: &ClusterNodeStatus) -> String {
    let mut nodes: Vec<_> = status.nodes_added.iter().collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut t = Table::new();
    t.row([
        "Name",
        "IPv4 Address",
        "Endpoint CIDR",
        "IPv6 Address",
        "Endpoint CIDR",
        "Source",
    ]);
    for node in nodes {
        let source = if node.name == status.self_name {
            "local"
        } else {
            "kvstore"
        };
        let v6 = node.primary_address.ipv6.as_ref();
        t.row([
            node.name.as_str(),
            node.primary_address.ipv4.ip.as_str(),
            node.ipv4_alloc_cidr.as_str(),
            v6.map_or("", |a| a.ip.as_str()),
            v6.map_or("", |a| a.alloc_range.as_str()),
            source,
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::{NodeAddressing, NodeAddressingElement, NodeElement};

    fn node(name: &str, ip: &str, cidr: &str) -> NodeElement {
        NodeElement {
            name: name.into(),
            primary_address: NodeAddressing {
                ipv4: NodeAddressingElement {
                    enabled: true,
                    ip: ip.into(),
                    alloc_range: String::new(),
                },
                ipv6: None,
            },
            ipv4_alloc_cidr: cidr.into(),
            health: "ok".into(),
        }
    }

    #[test]
    fn nodes_sorted_by_name_with_local_source() {
        let status = ClusterNodeStatus {
            self_name: "node-a".into(),
            nodes_added: vec![
                node("node-b", "192.168.1.3", "10.1.1.0/24"),
                node("node-a", "192.168.1.2", "10.1.0.0/24"),
            ],
        };
        assert_eq!(
            render(&status),
            "Name     IPv4 Address   Endpoint CIDR   IPv6 Address   Endpoint CIDR   Source\n\
             node-a   192.168.1.2    10.1.0.0/24                                    local\n\
             node-b   192.168.1.3    10.1.1.0/24                                    kvstore\n"
        );
    }

    #[test]
    fn a_dual_stack_node_shows_its_ipv6_address_and_range() {
        let mut dual = node("node-a", "192.168.1.2", "10.1.0.0/24");
        dual.primary_address.ipv6 = Some(NodeAddressingElement {
            enabled: true,
            ip: "fd00::a".into(),
            alloc_range: "f00d::c0a8:102:0:0/96".into(),
        });
        let text = render(&ClusterNodeStatus {
            self_name: "node-a".into(),
            nodes_added: vec![dual],
        });
        let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "node-a",
                "192.168.1.2",
                "10.1.0.0/24",
                "fd00::a",
                "f00d::c0a8:102:0:0/96",
                "local"
            ],
            "{text}"
        );
    }
}
