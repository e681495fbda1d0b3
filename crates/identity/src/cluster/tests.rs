//! The cluster allocator on the embedded kvstore: agreement between nodes, reference
//! counting, garbage collection, watch and re-publishing after a lease loss.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kvstore::conformance::eventually;
use kvstore::{Backend, Embedded, Session};
use policy::labels::Labels;

use super::*;
use crate::reserved::{HEALTH, HOST, INIT};

const TTL: Duration = Duration::from_secs(5);

fn labels(list: &[&str]) -> Labels {
    Labels::parse_all(list).expect("valid test labels")
}

fn store() -> Arc<dyn Backend> {
    Arc::new(Embedded::new())
}

async fn node(kv: &Arc<dyn Backend>, name: &str) -> ClusterAllocator {
    let session = Session::start(kv.clone(), TTL);
    session
        .wait_for_lease(Duration::from_secs(5))
        .await
        .unwrap();
    ClusterAllocator::start(session, name).unwrap()
}

async fn keys_under(kv: &Arc<dyn Backend>, prefix: &str) -> Vec<String> {
    let listing = kv.list_prefix(prefix).await.unwrap();
    listing.kvs.into_iter().map(|kv| kv.key).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_nodes_agree_on_every_label_set() {
    let kv = store();
    let (a, b, c) = (
        node(&kv, "a").await,
        node(&kv, "b").await,
        node(&kv, "c").await,
    );
    let sets: Vec<Labels> = (0..20)
        .map(|n| labels(&[&format!("k8s:app=svc{n}")]))
        .collect();
    let run = |alloc: ClusterAllocator, sets: Vec<Labels>| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for set in &sets {
                ids.push(alloc.allocate(set).await.unwrap().0.id);
            }
            ids
        })
    };
    let mut reversed = sets.clone();
    reversed.reverse();
    let (ids_a, ids_b, ids_c) = tokio::join!(
        run(a.clone(), sets.clone()),
        run(b.clone(), reversed),
        run(c.clone(), sets.clone())
    );
    let (ids_a, mut ids_b, ids_c) = (ids_a.unwrap(), ids_b.unwrap(), ids_c.unwrap());
    ids_b.reverse();
    assert_eq!(ids_a, ids_b, "same labels, same id on every node");
    assert_eq!(ids_a, ids_c);
    let distinct: BTreeSet<u32> = ids_a.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        sets.len(),
        "different labels, different ids"
    );
    assert!(distinct
        .iter()
        .all(|id| (MIN_ALLOCATED..=MAX_ALLOCATED).contains(id)));
    assert_eq!(keys_under(&kv, keys::ID_PREFIX).await.len(), sets.len());
    assert_eq!(
        keys_under(&kv, keys::VALUE_PREFIX).await.len(),
        sets.len() * 3
    );
    assert!(
        keys_under(&kv, keys::LOCK_PREFIX).await.is_empty(),
        "locks released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_labels_raced_from_two_nodes_get_one_id() {
    for round in 0..10 {
        let kv = store();
        let (a, b) = (node(&kv, "a").await, node(&kv, "b").await);
        let web = labels(&[&format!("k8s:app=web{round}")]);
        let (ra, rb) = tokio::join!(a.allocate(&web), b.allocate(&web));
        let ((ia, created_a), (ib, created_b)) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ia, ib);
        assert!(created_a ^ created_b, "exactly one creation");
    }
}

#[tokio::test]
async fn layout_follows_cilium() {
    let kv = store();
    let a = node(&kv, "node-a").await;
    let set = labels(&["k8s:app=web", "k8s:io.kubernetes.pod.namespace=default"]);
    let (identity, created) = a.allocate(&set).await.unwrap();
    assert!(created);
    assert_eq!(identity.id, MIN_ALLOCATED);
    let master = kv
        .get("cilium/state/identities/v1/id/256")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        master.value_str(),
        "k8s:app=web;k8s:io.kubernetes.pod.namespace=default;"
    );
    assert_eq!(
        master.lease, None,
        "master keys outlive nodes; GC removes them"
    );
    let value = kv
        .get("cilium/state/identities/v1/value/k8s:app=web;k8s:io.kubernetes.pod.namespace=default;/node-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value.value_str(), "256");
    assert!(
        value.lease.is_some(),
        "a node's reference lives under its lease"
    );
}

#[tokio::test]
async fn reserved_labels_never_touch_the_store() {
    let kv = store();
    let a = node(&kv, "a").await;
    assert_eq!(
        a.allocate(&Labels::reserved("health")).await.unwrap().0.id,
        HEALTH
    );
    assert_eq!(a.allocate(&Labels::default()).await.unwrap().0.id, INIT);
    let host = labels(&["reserved:host", "reserved:kube-apiserver"]);
    assert_eq!(a.allocate(&host).await.unwrap().0.id, HOST);
    assert!(!a.release(HOST).await.unwrap());
    assert!(a
        .allocate(&labels(&["reserved:world", "k8s:app=x"]))
        .await
        .is_err());
    assert!(keys_under(&kv, keys::BASE).await.is_empty());
    assert_eq!(
        a.get(HEALTH).await.unwrap().unwrap().labels,
        Labels::reserved("health")
    );
    assert_eq!(a.get(0).await.unwrap(), None);
}

#[tokio::test]
async fn local_references_map_to_one_key_per_node() {
    let kv = store();
    let a = node(&kv, "a").await;
    let web = labels(&["k8s:app=web"]);
    let (first, _) = a.allocate(&web).await.unwrap();
    let (second, created) = a.allocate(&web).await.unwrap();
    assert_eq!((first.id, created), (second.id, false));
    assert_eq!(a.local_refcount(first.id), Some(2));
    assert_eq!(keys_under(&kv, keys::VALUE_PREFIX).await.len(), 1);
    assert!(!a.release(first.id).await.unwrap());
    assert_eq!(keys_under(&kv, keys::VALUE_PREFIX).await.len(), 1);
    assert!(a.release(first.id).await.unwrap());
    assert!(keys_under(&kv, keys::VALUE_PREFIX).await.is_empty());
    assert_eq!(a.local_refcount(first.id), None);
    assert!(matches!(
        a.release(first.id).await,
        Err(ClusterIdentityError::Identity(IdentityError::UnknownIdentity(id))) if id == first.id
    ));
    // The number stays until GC: asking again brings the same one back.
    assert_eq!(a.allocate(&web).await.unwrap().0.id, first.id);
}

#[tokio::test]
async fn lookup_get_and_list_see_other_nodes() {
    let kv = store();
    let (a, b) = (node(&kv, "a").await, node(&kv, "b").await);
    let web = labels(&["k8s:app=web"]);
    let (identity, _) = a.allocate(&web).await.unwrap();
    assert_eq!(b.lookup(&web).await.unwrap(), Some(identity.id));
    assert_eq!(b.lookup(&labels(&["k8s:app=none"])).await.unwrap(), None);
    assert_eq!(b.get(identity.id).await.unwrap(), Some(identity.clone()));
    let listed = b.list().await.unwrap();
    assert_eq!(listed.last(), Some(&identity));
    assert!(listed.iter().any(|i| i.id == HOST));
    assert_eq!(
        b.local_refcount(identity.id),
        None,
        "lookups take no reference"
    );
}

#[tokio::test]
async fn gc_removes_only_unreferenced_numbers_after_grace() {
    let kv = store();
    let (a, b) = (node(&kv, "a").await, node(&kv, "b").await);
    let (web, _) = a.allocate(&labels(&["k8s:app=web"])).await.unwrap();
    let (db, _) = b.allocate(&labels(&["k8s:app=db"])).await.unwrap();
    a.release(web.id).await.unwrap();
    let mut gc = a.gc_with_grace(Duration::from_millis(300));
    assert!(
        gc.run_once().await.unwrap().is_empty(),
        "first sighting only marks"
    );
    assert!(gc.run_once().await.unwrap().is_empty(), "grace not over");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(gc.run_once().await.unwrap(), vec![web.id]);
    assert_eq!(a.get(web.id).await.unwrap(), None);
    assert_eq!(
        a.get(db.id).await.unwrap(),
        Some(db.clone()),
        "referenced by b"
    );

    // A new allocation in between resets the candidate: a fresh number is not collected.
    let (again, created) = a.allocate(&labels(&["k8s:app=web"])).await.unwrap();
    assert!(created);
    assert_ne!(
        again.id, web.id,
        "a freed number is not reused straight away"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(gc.run_once().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_dead_nodes_references_vanish_with_its_lease() {
    let kv = store();
    let a = node(&kv, "a").await;
    let session = Session::start(kv.clone(), Duration::from_millis(300));
    session
        .wait_for_lease(Duration::from_secs(5))
        .await
        .unwrap();
    let doomed = ClusterAllocator::start(session, "doomed").unwrap();
    let (identity, _) = doomed.allocate(&labels(&["k8s:app=batch"])).await.unwrap();
    // The node dies without releasing: its lease is revoked (as on expiry).
    drop(doomed);
    assert!(
        eventually(Duration::from_secs(5), || async {
            keys_under(&kv, keys::VALUE_PREFIX).await.is_empty()
        })
        .await
    );
    let mut gc = a.gc_with_grace(Duration::ZERO);
    gc.run_once().await.unwrap();
    assert_eq!(gc.run_once().await.unwrap(), vec![identity.id]);
}

#[tokio::test]
async fn watch_reports_identities_as_they_come_and_go() {
    let kv = store();
    let a = node(&kv, "a").await;
    let (old, _) = a.allocate(&labels(&["k8s:app=old"])).await.unwrap();
    let mut events = a.watch();
    assert_eq!(next(&mut events).await, IdentityEvent::ListStart);
    assert_eq!(next(&mut events).await, IdentityEvent::Upsert(old.clone()));
    assert_eq!(next(&mut events).await, IdentityEvent::ListDone);
    let (new, _) = a.allocate(&labels(&["k8s:app=new"])).await.unwrap();
    assert_eq!(next(&mut events).await, IdentityEvent::Upsert(new));
    a.release(old.id).await.unwrap();
    let mut gc = a.gc_with_grace(Duration::ZERO);
    gc.run_once().await.unwrap();
    gc.run_once().await.unwrap();
    assert_eq!(next(&mut events).await, IdentityEvent::Delete(old.id));
}

#[tokio::test]
async fn keys_are_republished_after_a_lease_loss() {
    let kv = store();
    let (a, b) = (node(&kv, "a").await, node(&kv, "b").await);
    let web = labels(&["k8s:app=web"]);
    let (identity, _) = a.allocate(&web).await.unwrap();
    let lease = a.inner.session.lease_id().unwrap();
    // The lease is lost (e.g. expired during an etcd outage) and meanwhile another
    // node's GC collected the unreferenced number.
    kv.revoke_lease(lease).await.unwrap();
    let mut gc = b.gc_with_grace(Duration::ZERO);
    gc.run_once().await.unwrap();
    assert_eq!(gc.run_once().await.unwrap(), vec![identity.id]);
    // The node's session gets a new lease and the allocator restores its keys.
    assert!(
        eventually(Duration::from_secs(5), || async {
            b.lookup(&web).await.unwrap() == Some(identity.id)
        })
        .await
    );
    assert_eq!(b.get(identity.id).await.unwrap(), Some(identity.clone()));
    assert_eq!(b.allocate(&web).await.unwrap().0.id, identity.id);
}

#[tokio::test]
async fn node_names_must_fit_in_keys() {
    let kv = store();
    for bad in ["", "a/b"] {
        let session = Session::start(kv.clone(), TTL);
        assert!(matches!(
            ClusterAllocator::start(session, bad),
            Err(ClusterIdentityError::InvalidNodeName(_))
        ));
    }
}

async fn next(events: &mut IdentityWatch) -> IdentityEvent {
    tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("identity event within 5 s")
        .expect("watch open")
}
