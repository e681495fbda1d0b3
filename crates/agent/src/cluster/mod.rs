//! This node as a member of the cluster: the kvstore (embedded or etcd), the
//! node's session lease, cluster-wide identities, its registration and pod
//! CIDR, and the publisher of its endpoints' addresses.

pub mod identities;
pub mod keys;
pub mod publisher;
pub mod watch;

use std::{net::Ipv4Addr, sync::Arc, time::Duration};

use anyhow::{bail, Context};
use identity::ClusterAllocator;
use kvstore::{Backend, KvstoreConfig, Session};

use crate::{
    config::Config,
    ipam::{v6::Cidr6, Cidr},
    netdev,
};
use keys::NodeRecord;
use publisher::Publisher;

/// How long the node's keys outlive an agent that stopped renewing them.
const SESSION_TTL: Duration = Duration::from_secs(15);

pub struct Cluster {
    pub kv: Arc<dyn Backend>,
    pub identities: identities::Identities,
    pub node: NodeRecord,
    pub publisher: Publisher,
}

impl Cluster {
    /// Connects to the kvstore and registers this node.
    pub async fn join(config: &Config) -> anyhow::Result<Cluster> {
        let kv_config = KvstoreConfig::from_flags(&config.kvstore, &config.kvstore_opt)?;
        let kv = kv_config
            .connect(Some(&config.state_dir))
            .await
            .with_context(|| format!("connecting to the {} kvstore", kv_config.kind()))?;
        let session = Session::start(kv.clone(), SESSION_TTL);
        let name = config.node_name();
        let ip = match config.node_ip {
            Some(ip) => ip,
            None => netdev::default_route_source()
                .context("cannot detect this node's IP from the default route: pass --node-ip")?,
        };
        let pod_cidr = match config.enable_ipv4 {
            true => Some(pod_cidr(config, &*kv, &name).await?),
            false => None,
        };
        let pod_cidr6 = match config.enable_ipv6 {
            true => Some(pod_cidr6(config, &*kv, &name, ip).await?),
            false => None,
        };
        let identities = if config.crd_mode() {
            let client = k8s::connect(&config.k8s()).await?;
            identities::Identities::Crd(Arc::new(k8s::identities::CrdAllocator::new(client)))
        } else {
            identities::Identities::Kvstore(ClusterAllocator::start(session.clone(), &name)?)
        };
        let ipv6 = match config.enable_ipv6 {
            true => node_ipv6(config, ip),
            false => None,
        };
        let node = NodeRecord {
            name,
            ipv4: ip,
            ipv6,
            health_ipv6: None,
            // Empty with --enable-ipv4=false: no IPv4 pods to route.
            pod_cidr: pod_cidr.map(|c| c.to_string()).unwrap_or_default(),
            health_ipv4: None,
            ipv6_pod_cidr: pod_cidr6.map(|c| c.to_string()),
        };
        let publisher = Publisher::start(session.clone());
        publisher.put(keys::node_key(&node.name), serde_json::to_vec(&node)?);
        Ok(Cluster {
            kv,
            identities,
            node,
            publisher,
        })
    }

    /// This node's IPv4 pod range; `None` with `--enable-ipv4=false`.
    pub fn pod_cidr(&self) -> Option<Cidr> {
        if self.node.pod_cidr.is_empty() {
            return None;
        }
        Some(Cidr::parse(&self.node.pod_cidr).expect("validated when the node joined"))
    }

    /// This node's IPv6 pod range; `None` with `--enable-ipv6=false`.
    pub fn pod_cidr6(&self) -> Option<Cidr6> {
        let text = self.node.ipv6_pod_cidr.as_deref()?;
        Some(Cidr6::parse(text).expect("validated when the node joined"))
    }

    pub fn node_ip(&self) -> Ipv4Addr {
        self.node.ipv4
    }
}

/// `--ipv6-node`, or with `auto` the first global IPv6 address on the
/// device that carries the node's IPv4 address.
fn node_ipv6(config: &Config, node_ip: Ipv4Addr) -> Option<std::net::Ipv6Addr> {
    match config.ipv6_node.as_str() {
        "auto" => netdev::addresses6_of(&netdev::device_with_address(node_ip)?)
            .into_iter()
            .next(),
        text => text.parse().ok(),
    }
}

/// `--ipv4-range` as given, or a block of `--cluster-pool-ipv4-cidr` this
/// node claims in the kvstore (the same block again after a restart).
async fn pod_cidr(config: &Config, kv: &dyn Backend, node: &str) -> anyhow::Result<Cidr> {
    let Some(pool) = &config.cluster_pool_ipv4_cidr else {
        let range = config.ipv4_range.as_deref().unwrap_or("10.200.0.0/16");
        return Ok(Cidr::parse(range)?);
    };
    if config.crd_mode() && config.kvstore == "embedded" {
        bail!(
            "--cluster-pool-ipv4-cidr: blocks are claimed in the kvstore, and the embedded one is this node's alone (every node would claim the same block); use --ipam kubernetes, --ipv4-range, or --kvstore etcd"
        );
    }
    let pool = Cidr::parse(pool).context("--cluster-pool-ipv4-cidr")?;
    let mask = config.cluster_pool_ipv4_mask_size;
    if mask < pool.prefix_len || mask > 30 {
        bail!(
            "--cluster-pool-ipv4-mask-size {mask} must be between {} and 30",
            pool.prefix_len
        );
    }
    let listing = kv.list_prefix(keys::PODCIDR_PREFIX).await?;
    if let Some(mine) = listing.kvs.iter().find(|k| k.value_str() == node) {
        return keys::parse_podcidr_key(&mine.key).context("corrupt pod CIDR claim in the kvstore");
    }
    let step = 1u32 << (32 - mask);
    let blocks = 1u32 << (mask - pool.prefix_len);
    for i in 0..blocks {
        let block = Cidr {
            network: Ipv4Addr::from(u32::from(pool.network) + i * step),
            prefix_len: mask,
        };
        if kv
            .create_only(&keys::podcidr_key(&block), node.as_bytes().to_vec(), None)
            .await?
        {
            return Ok(block);
        }
    }
    bail!("--cluster-pool-ipv4-cidr {pool}: every /{mask} block is taken")
}

/// `--ipv6-range` (`auto`: derived from the node's IPv4 address), or a
/// block of `--cluster-pool-ipv6-cidr` this node claims in the kvstore.
async fn pod_cidr6(
    config: &Config,
    kv: &dyn Backend,
    node: &str,
    node_ip: Ipv4Addr,
) -> anyhow::Result<Cidr6> {
    let Some(pool) = &config.cluster_pool_ipv6_cidr else {
        return match config.ipv6_range.as_str() {
            "auto" => Ok(Cidr6::auto(node_ip)),
            range => Cidr6::parse(range).context("--ipv6-range"),
        };
    };
    if config.crd_mode() && config.kvstore == "embedded" {
        bail!("--cluster-pool-ipv6-cidr: blocks are claimed in the kvstore, and the embedded one is this node's alone; use --ipv6-range or --kvstore etcd");
    }
    let (ip, len) = pool
        .split_once('/')
        .context("--cluster-pool-ipv6-cidr: expected ADDR/len")?;
    let pool_len: u8 = len
        .parse()
        .context("--cluster-pool-ipv6-cidr: prefix length")?;
    let mask = config.cluster_pool_ipv6_mask_size;
    if !(64..=126).contains(&mask) || mask < pool_len || mask - pool_len > 64 {
        bail!("--cluster-pool-ipv6-mask-size {mask} must be between {pool_len} and 126 (and at least 64)");
    }
    // The pool itself may be wider than a /64: only its network matters.
    let pool_net: std::net::Ipv6Addr = ip.parse().context("--cluster-pool-ipv6-cidr")?;
    let pool_bits =
        u128::from(pool_net) & (u128::MAX.checked_shl(128 - pool_len as u32).unwrap_or(0));
    let listing = kv.list_prefix(keys::PODCIDR6_PREFIX).await?;
    if let Some(mine) = listing.kvs.iter().find(|k| k.value_str() == node) {
        let text = mine
            .key
            .strip_prefix(keys::PODCIDR6_PREFIX)
            .unwrap_or_default();
        return Cidr6::parse(&text.replacen('_', "/", 1))
            .context("corrupt IPv6 pod CIDR claim in the kvstore");
    }
    let step = 1u128 << (128 - mask as u32);
    // Enough blocks for any cluster; a pool is never walked to its end.
    let blocks = (1u128 << (mask - pool_len) as u32).min(1 << 16);
    for i in 0..blocks {
        let block = Cidr6::parse(&format!(
            "{}/{mask}",
            std::net::Ipv6Addr::from(pool_bits + i * step)
        ))?;
        let key = format!("{}{}_{}", keys::PODCIDR6_PREFIX, block.network, mask);
        if kv.create_only(&key, node.as_bytes().to_vec(), None).await? {
            return Ok(block);
        }
    }
    bail!("--cluster-pool-ipv6-cidr {pool}: every /{mask} block is taken")
}
