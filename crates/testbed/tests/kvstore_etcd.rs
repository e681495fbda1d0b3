//! The kvstore and the cluster-wide identity allocator against a real etcd started by
//! the test (testbed::etcd): the shared Backend conformance suite, resuming watches
//! across an etcd restart, lease expiry, a 3-member cluster losing a member, and two
//! "nodes" agreeing on identities. Needs `etcd` (Debian: etcd-server); no root.

use std::sync::Arc;
use std::time::Duration;

use identity::cluster::{ClusterAllocator, IdentityEvent};
use kvstore::conformance::{self, eventually, next};
use kvstore::{Backend, KvError, KvstoreConfig, Session, WatchEvent};
use policy::labels::Labels;
use testbed::etcd::EtcdCluster;

/// Short enough to keep the test quick, long enough for etcd's minimum lease TTL.
const TTL: Duration = Duration::from_secs(2);

async fn connect(cluster: &EtcdCluster) -> Arc<dyn Backend> {
    let opts = [
        cluster.kvstore_opt(),
        "etcd.operationTimeout=2s".to_string(),
    ];
    let config = KvstoreConfig::from_flags("etcd", &opts).expect("valid etcd flags");
    config.connect(None).await.expect("etcd client")
}

fn labels(list: &[&str]) -> Labels {
    Labels::parse_all(list).expect("valid test labels")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_conformance_on_etcd() {
    let cluster = EtcdCluster::start(1).expect("etcd starts");
    let kv = connect(&cluster).await;
    conformance::run_all(kv.clone(), "conformance", TTL).await;
    let status = kv.status().await.unwrap();
    assert!(status.starts_with("etcd: 1 endpoint"), "{status}");
    assert!(status.contains("3.4"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_fails_fast_and_watch_resumes_after_restart() {
    let mut cluster = EtcdCluster::start(1).expect("etcd starts");
    let kv = connect(&cluster).await;
    let session = Session::start(kv.clone(), TTL);
    session
        .wait_for_lease(Duration::from_secs(5))
        .await
        .unwrap();
    session.put("nodes/n1", b"up".to_vec()).await.unwrap();
    kv.set("w/a", b"1".to_vec(), None).await.unwrap();
    let mut watch = kv.watch_prefix("w/", None);
    assert_eq!(next(&mut watch).await, WatchEvent::ListStart);
    assert!(matches!(next(&mut watch).await, WatchEvent::Put { key, .. } if key == "w/a"));
    assert!(matches!(
        next(&mut watch).await,
        WatchEvent::ListDone { .. }
    ));

    cluster.stop_all();
    let started = std::time::Instant::now();
    let err = kv.get("w/a").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(matches!(
        err,
        KvError::Timeout { .. } | KvError::Unavailable { .. }
    ));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "failed fast: {err}"
    );

    cluster.restart_all().expect("etcd restarts");
    // The first writes after a restart may race the client's reconnect.
    assert!(
        eventually(Duration::from_secs(10), || async {
            kv.set("w/b", b"2".to_vec(), None).await.is_ok()
        })
        .await
    );
    // The watch resumes where it stopped: no replay, just the new key.
    match next(&mut watch).await {
        WatchEvent::Put { key, value, .. } => {
            assert_eq!((key.as_str(), &value[..]), ("w/b", &b"2"[..]))
        }
        other => panic!("expected the resumed Put, got {other:?}"),
    }
    // The session's key is still (or again) there, under a live lease.
    assert!(
        eventually(Duration::from_secs(10), || async {
            matches!(kv.get("nodes/n1").await, Ok(Some(kv)) if kv.lease == session.lease_id())
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_keys_come_back_after_etcd_is_wiped() {
    let mut cluster = EtcdCluster::start(1).expect("etcd starts");
    let kv = connect(&cluster).await;
    let session = Session::start(kv.clone(), TTL);
    session
        .wait_for_lease(Duration::from_secs(5))
        .await
        .unwrap();
    session.put("nodes/n1", b"up".to_vec()).await.unwrap();
    let mut watch = kv.watch_prefix("nodes/", None);
    assert_eq!(next(&mut watch).await, WatchEvent::ListStart);
    assert!(matches!(next(&mut watch).await, WatchEvent::Put { .. }));
    assert!(matches!(
        next(&mut watch).await,
        WatchEvent::ListDone { .. }
    ));

    // Replace the cluster by an empty one on other ports: nothing survives.
    cluster.stop_all();
    drop(cluster);
    let fresh = EtcdCluster::start(1).expect("fresh etcd");
    let kv2 = connect(&fresh).await;
    let session2 = Session::start(kv2.clone(), TTL);
    session2
        .wait_for_lease(Duration::from_secs(5))
        .await
        .unwrap();
    session2.put("nodes/n2", b"up".to_vec()).await.unwrap();
    session2
        .backend()
        .revoke_lease(session2.lease_id().unwrap())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            matches!(kv2.get("nodes/n2").await, Ok(Some(_)))
        })
        .await,
        "the session re-publishes its key under a new lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_survive_losing_one() {
    let mut cluster = EtcdCluster::start(3).expect("3-member etcd starts");
    let kv = connect(&cluster).await;
    kv.set("ha/a", b"1".to_vec(), None).await.unwrap();
    let mut watch = kv.watch_prefix("ha/", None);
    assert_eq!(next(&mut watch).await, WatchEvent::ListStart);
    assert!(matches!(next(&mut watch).await, WatchEvent::Put { .. }));
    assert!(matches!(
        next(&mut watch).await,
        WatchEvent::ListDone { .. }
    ));
    let lease = kv.grant_lease(Duration::from_secs(10)).await.unwrap();
    kv.set("ha/leased", b"x".to_vec(), Some(lease))
        .await
        .unwrap();
    assert!(matches!(next(&mut watch).await, WatchEvent::Put { key, .. } if key == "ha/leased"));

    for victim in 0..2 {
        cluster.kill_member(victim).unwrap();
        assert!(
            eventually(Duration::from_secs(10), || async {
                kv.set("ha/b", victim.to_string().into_bytes(), None)
                    .await
                    .is_ok()
            })
            .await,
            "writes continue without member {victim}"
        );
        match next(&mut watch).await {
            WatchEvent::Put { key, .. } => assert_eq!(key, "ha/b"),
            other => panic!("watch continues after losing member {victim}: {other:?}"),
        }
        assert!(kv.keep_alive_lease(lease).await.unwrap(), "lease survives");
        assert_eq!(kv.get("ha/a").await.unwrap().unwrap().value, b"1");
        cluster.start_member(victim).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_agree_on_identities() {
    let cluster = EtcdCluster::start(1).expect("etcd starts");
    let kv_a = connect(&cluster).await;
    let kv_b = connect(&cluster).await;
    let node_a = ClusterAllocator::start(Session::start(kv_a, TTL), "node-a").unwrap();
    let node_b = ClusterAllocator::start(Session::start(kv_b, TTL), "node-b").unwrap();
    let mut events = node_b.watch();

    let web = labels(&["k8s:app=web"]);
    let db = labels(&["k8s:app=db"]);
    let (a_web, b_web) = tokio::join!(node_a.allocate(&web), node_b.allocate(&web));
    let (a_web, b_web) = (a_web.unwrap(), b_web.unwrap());
    assert_eq!(a_web.0.id, b_web.0.id, "same labels, same id on both nodes");
    assert!((256..=65535).contains(&a_web.0.id));
    assert!(a_web.1 ^ b_web.1, "exactly one node created it");
    let (a_db, _) = node_a.allocate(&db).await.unwrap();
    assert_ne!(a_db.id, a_web.0.id);

    // node-b learns both identities through its watch.
    let mut learned = std::collections::BTreeMap::new();
    while learned.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("identity event")
            .expect("watch open");
        if let IdentityEvent::Upsert(identity) = event {
            learned.insert(identity.id, identity.labels);
        }
    }
    assert_eq!(learned[&a_db.id], db);
    assert_eq!(learned[&a_web.0.id], web);

    // Releasing on one node keeps the identity for the other; GC spares it.
    assert!(node_a.release(a_web.0.id).await.unwrap());
    let mut gc = node_a.gc_with_grace(Duration::ZERO);
    gc.run_once().await.unwrap();
    gc.run_once().await.unwrap();
    assert_eq!(node_a.lookup(&web).await.unwrap(), Some(a_web.0.id));
    // Once node-b lets go too, GC removes it and the watch reports it.
    assert!(node_b.release(b_web.0.id).await.unwrap());
    gc.run_once().await.unwrap();
    let removed = gc.run_once().await.unwrap();
    assert_eq!(removed, vec![a_web.0.id]);
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("identity event")
            .expect("watch open");
        if event == IdentityEvent::Delete(a_web.0.id) {
            break;
        }
    }
}
