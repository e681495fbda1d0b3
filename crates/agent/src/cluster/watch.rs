//! Following the rest of the cluster: identities, endpoint addresses,
//! nodes and services, each from a kvstore watch that replays in full after
//! it could not resume, so a consumer can drop what vanished meanwhile.

use std::{collections::BTreeSet, sync::Arc};

use identity::IdentityEvent;
use kvstore::WatchEvent;

use super::keys::{self, IpRecord, NodeRecord};
use crate::daemon::Daemon;

pub async fn identities(daemon: Arc<Daemon>) {
    let Some(allocator) = daemon.cluster().identities.kvstore() else {
        return;
    };
    let mut watch = allocator.watch();
    let mut replay: Option<BTreeSet<u32>> = None;
    while let Some(event) = watch.next().await {
        match event {
            IdentityEvent::ListStart => replay = Some(BTreeSet::new()),
            IdentityEvent::Upsert(identity) => {
                if let Some(seen) = replay.as_mut() {
                    seen.insert(identity.id);
                }
                daemon.identity_seen(identity);
            }
            IdentityEvent::Delete(id) => daemon.identity_gone(id),
            IdentityEvent::ListDone => {
                if let Some(seen) = replay.take() {
                    daemon.identities_resynced(&seen);
                }
            }
        }
    }
}

/// Follows a prefix, handing parsed puts and deletes to the daemon.
async fn follow<K: Ord + Clone, V>(
    daemon: &Daemon,
    prefix: &str,
    parse: impl Fn(&str, &[u8]) -> Option<(K, V)>,
    key_of: impl Fn(&str) -> Option<K>,
    mut seen_fn: impl FnMut(&Daemon, K, V),
    mut gone_fn: impl FnMut(&Daemon, K),
    mut resync_fn: impl FnMut(&Daemon, &BTreeSet<K>),
) {
    let mut watch = daemon.cluster().kv.watch_prefix(prefix, None);
    let mut replay: Option<BTreeSet<K>> = None;
    while let Some(event) = watch.next().await {
        match event {
            WatchEvent::ListStart => replay = Some(BTreeSet::new()),
            WatchEvent::Put { key, value, .. } => match parse(&key, &value) {
                Some((k, v)) => {
                    if let Some(seen) = replay.as_mut() {
                        seen.insert(k.clone());
                    }
                    seen_fn(daemon, k, v);
                }
                None => eprintln!("kvstore: ignoring malformed {key}"),
            },
            WatchEvent::Delete { key, .. } => {
                if let Some(k) = key_of(&key) {
                    gone_fn(daemon, k);
                }
            }
            WatchEvent::ListDone { .. } => {
                if let Some(seen) = replay.take() {
                    resync_fn(daemon, &seen);
                }
            }
        }
    }
}

/// Other nodes' endpoint addresses, IPv4 and IPv6 under one prefix.
pub async fn endpoint_ips(daemon: Arc<Daemon>) {
    use std::net::IpAddr;
    follow(
        &daemon,
        keys::IP_PREFIX,
        |key, value| {
            Some((
                keys::parse_ip_key(key)?,
                serde_json::from_slice::<IpRecord>(value).ok()?,
            ))
        },
        keys::parse_ip_key,
        |d, ip, record| match ip {
            IpAddr::V4(ip) => d.remote_ip_seen(ip, record),
            IpAddr::V6(ip) => d.remote_ip6_seen(ip, record),
        },
        |d, ip| match ip {
            IpAddr::V4(ip) => d.remote_ip_gone(ip),
            IpAddr::V6(ip) => d.remote_ip6_gone(ip),
        },
        |d, seen| {
            let v4 = seen.iter().filter_map(|ip| match ip {
                IpAddr::V4(ip) => Some(*ip),
                IpAddr::V6(_) => None,
            });
            let v6 = seen.iter().filter_map(|ip| match ip {
                IpAddr::V6(ip) => Some(*ip),
                IpAddr::V4(_) => None,
            });
            d.remote_ips_resynced(&v4.collect());
            d.remote_ips6_resynced(&v6.collect());
        },
    )
    .await
}

pub async fn nodes(daemon: Arc<Daemon>) {
    let name_of = |key: &str| key.strip_prefix(keys::NODES_PREFIX).map(str::to_string);
    follow(
        &daemon,
        keys::NODES_PREFIX,
        |key, value| {
            Some((
                name_of(key)?,
                serde_json::from_slice::<NodeRecord>(value).ok()?,
            ))
        },
        name_of,
        |d, _, node| d.node_seen(node),
        |d, name| d.node_gone(&name),
        |d, seen| d.nodes_resynced(seen),
    )
    .await
}

/// Services any node defined, applied here; deleted ones removed.
pub async fn services(daemon: Arc<Daemon>) {
    follow(
        &daemon,
        keys::SERVICES_PREFIX,
        keys::decode_service,
        keys::parse_service_key,
        |d, id, record| d.cluster_service_seen(id, record),
        |d, id| d.cluster_service_gone(id),
        |d, seen| d.cluster_services_resynced(seen),
    )
    .await
}
