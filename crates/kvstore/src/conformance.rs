//! A behaviour suite every [`Backend`] must pass, shared by the embedded backend's unit
//! tests and the etcd integration tests in `testbed`. Each check panics on failure and
//! uses only keys under the prefix it is given.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Backend;
use crate::error::KvError;
use crate::lease::Lease;
use crate::session::Session;
use crate::types::WatchEvent;
use crate::watch::Watch;

/// Runs every check (lease expiry with a TTL of `ttl`) under `prefix`.
pub async fn run_all(backend: Arc<dyn Backend>, prefix: &str, ttl: Duration) {
    basic_get_set_delete(&*backend, &format!("{prefix}/basic")).await;
    prefix_list_and_delete(&*backend, &format!("{prefix}/list")).await;
    conditional_writes(&*backend, &format!("{prefix}/cond")).await;
    leases(&*backend, &format!("{prefix}/lease")).await;
    lease_expiry(&*backend, &format!("{prefix}/expiry"), ttl).await;
    lease_object(backend.clone(), &format!("{prefix}/object"), ttl).await;
    watch_list_then_changes(&*backend, &format!("{prefix}/watch")).await;
    watch_resume_from_revision(&*backend, &format!("{prefix}/resume")).await;
    session_republishes_after_lease_loss(backend.clone(), &format!("{prefix}/session"), ttl).await;
}

pub async fn basic_get_set_delete(kv: &dyn Backend, prefix: &str) {
    let key = format!("{prefix}/a");
    assert_eq!(kv.get(&key).await.unwrap(), None);
    let first = kv.set(&key, b"1".to_vec(), None).await.unwrap();
    let got = kv.get(&key).await.unwrap().expect("key was set");
    assert_eq!(
        (got.key.as_str(), got.value.as_slice()),
        (key.as_str(), &b"1"[..])
    );
    assert_eq!((got.create_revision, got.mod_revision), (first, first));
    assert_eq!(got.lease, None);
    let second = kv.set(&key, b"2".to_vec(), None).await.unwrap();
    assert!(second > first, "revisions grow: {first} then {second}");
    let got = kv.get(&key).await.unwrap().unwrap();
    assert_eq!(got.value, b"2");
    assert_eq!(
        got.create_revision, first,
        "an update keeps the create revision"
    );
    assert_eq!(got.mod_revision, second);
    assert!(kv.delete(&key).await.unwrap());
    assert!(
        !kv.delete(&key).await.unwrap(),
        "second delete finds nothing"
    );
    assert_eq!(kv.get(&key).await.unwrap(), None);
}

pub async fn prefix_list_and_delete(kv: &dyn Backend, prefix: &str) {
    for name in ["b", "a", "c/d"] {
        kv.set(&format!("{prefix}/x/{name}"), name.into(), None)
            .await
            .unwrap();
    }
    // A sibling sharing the text prefix but not the directory must stay out.
    kv.set(&format!("{prefix}/xy"), b"other".to_vec(), None)
        .await
        .unwrap();
    let listing = kv.list_prefix(&format!("{prefix}/x/")).await.unwrap();
    let keys: Vec<String> = listing.kvs.iter().map(|kv| kv.key.clone()).collect();
    let expected: Vec<String> = ["a", "b", "c/d"]
        .iter()
        .map(|name| format!("{prefix}/x/{name}"))
        .collect();
    assert_eq!(keys, expected, "listed in key order");
    assert!(listing.revision >= listing.kvs.iter().map(|kv| kv.mod_revision).max().unwrap());
    assert_eq!(kv.delete_prefix(&format!("{prefix}/x/")).await.unwrap(), 3);
    assert!(kv
        .list_prefix(&format!("{prefix}/x/"))
        .await
        .unwrap()
        .kvs
        .is_empty());
    assert!(kv.get(&format!("{prefix}/xy")).await.unwrap().is_some());
    assert_eq!(kv.delete_prefix(prefix).await.unwrap(), 1);
}

pub async fn conditional_writes(kv: &dyn Backend, prefix: &str) {
    let key = format!("{prefix}/k");
    assert!(kv.create_only(&key, b"first".to_vec(), None).await.unwrap());
    assert!(!kv
        .create_only(&key, b"second".to_vec(), None)
        .await
        .unwrap());
    assert_eq!(kv.get(&key).await.unwrap().unwrap().value, b"first");

    // compare-and-swap on value, and on absence.
    assert!(!kv
        .compare_and_swap(&key, Some(b"wrong".to_vec()), b"x".to_vec(), None)
        .await
        .unwrap());
    assert!(kv
        .compare_and_swap(&key, Some(b"first".to_vec()), b"swapped".to_vec(), None)
        .await
        .unwrap());
    assert!(!kv
        .compare_and_swap(&key, None, b"x".to_vec(), None)
        .await
        .unwrap());
    let fresh = format!("{prefix}/fresh");
    assert!(kv
        .compare_and_swap(&fresh, None, b"new".to_vec(), None)
        .await
        .unwrap());

    // Revision-guarded update and delete.
    let revision = kv.get(&key).await.unwrap().unwrap().mod_revision;
    assert!(!kv
        .update_if_revision(&key, revision - 1, b"stale".to_vec(), None)
        .await
        .unwrap());
    assert!(kv
        .update_if_revision(&key, revision, b"updated".to_vec(), None)
        .await
        .unwrap());
    assert!(
        !kv.delete_if_revision(&key, revision).await.unwrap(),
        "revision moved on"
    );
    let revision = kv.get(&key).await.unwrap().unwrap().mod_revision;
    assert!(kv.delete_if_revision(&key, revision).await.unwrap());
    assert!(kv
        .update_if_revision(&key, 0, b"absent-ok".to_vec(), None)
        .await
        .unwrap());

    // Writes guarded by another key's existence.
    let guard = format!("{prefix}/guard");
    let guarded = format!("{prefix}/guarded");
    assert!(!kv
        .set_if_exists(&guard, &guarded, b"v".to_vec(), None)
        .await
        .unwrap());
    assert_eq!(kv.get(&guarded).await.unwrap(), None);
    kv.set(&guard, b"g".to_vec(), None).await.unwrap();
    assert!(kv
        .set_if_exists(&guard, &guarded, b"v".to_vec(), None)
        .await
        .unwrap());
    assert_eq!(kv.get(&guarded).await.unwrap().unwrap().value, b"v");
    kv.delete_prefix(prefix).await.unwrap();
}

pub async fn leases(kv: &dyn Backend, prefix: &str) {
    let lease = kv.grant_lease(Duration::from_secs(30)).await.unwrap();
    let a = format!("{prefix}/a");
    let b = format!("{prefix}/b");
    kv.set(&a, b"a".to_vec(), Some(lease)).await.unwrap();
    assert!(kv
        .create_only(&b, b"b".to_vec(), Some(lease))
        .await
        .unwrap());
    assert_eq!(kv.get(&a).await.unwrap().unwrap().lease, Some(lease));
    assert!(kv.keep_alive_lease(lease).await.unwrap());
    kv.revoke_lease(lease).await.unwrap();
    assert_eq!(
        kv.get(&a).await.unwrap(),
        None,
        "revoking deletes leased keys"
    );
    assert_eq!(kv.get(&b).await.unwrap(), None);
    assert!(
        !kv.keep_alive_lease(lease).await.unwrap(),
        "revoked lease is gone"
    );
    let err = kv.set(&a, b"a".to_vec(), Some(lease)).await.unwrap_err();
    assert!(
        matches!(err, KvError::LeaseNotFound(id) if id == lease),
        "{err}"
    );
}

pub async fn lease_expiry(kv: &dyn Backend, prefix: &str, ttl: Duration) {
    let lease = kv.grant_lease(ttl).await.unwrap();
    let key = format!("{prefix}/k");
    kv.set(&key, b"v".to_vec(), Some(lease)).await.unwrap();
    let gone = eventually(ttl * 4 + Duration::from_secs(2), || async {
        kv.get(&key).await.unwrap().is_none()
    })
    .await;
    assert!(gone, "key of an expired lease must vanish");
}

pub async fn lease_object(kv: Arc<dyn Backend>, prefix: &str, ttl: Duration) {
    let lease = Lease::grant(kv.clone(), ttl).await.unwrap();
    let key = format!("{prefix}/k");
    kv.set(&key, b"v".to_vec(), Some(lease.id())).await.unwrap();
    // Outlive the TTL twice: the background keep-alive holds it.
    tokio::time::sleep(ttl * 2 + ttl / 2).await;
    assert!(lease.is_alive());
    assert!(
        kv.get(&key).await.unwrap().is_some(),
        "kept-alive lease keeps its key"
    );
    drop(lease);
    let gone = eventually(Duration::from_secs(5), || async {
        kv.get(&key).await.unwrap().is_none()
    })
    .await;
    assert!(gone, "dropping the lease revokes it");

    // A lease revoked behind its back reports the loss.
    let lease = Lease::grant(kv.clone(), ttl).await.unwrap();
    kv.revoke_lease(lease.id()).await.unwrap();
    tokio::time::timeout(ttl * 2 + Duration::from_secs(2), lease.lost())
        .await
        .expect("loss noticed by the keep-alive");
    assert!(!lease.is_alive());
}

pub async fn watch_list_then_changes(kv: &dyn Backend, prefix: &str) {
    let a = format!("{prefix}/a");
    let b = format!("{prefix}/b");
    let rev_a = kv.set(&a, b"1".to_vec(), None).await.unwrap();
    let mut watch = kv.watch_prefix(&format!("{prefix}/"), None);
    assert_eq!(next(&mut watch).await, WatchEvent::ListStart);
    assert_eq!(
        next(&mut watch).await,
        WatchEvent::Put {
            key: a.clone(),
            value: b"1".to_vec(),
            revision: rev_a
        }
    );
    let WatchEvent::ListDone { revision } = next(&mut watch).await else {
        panic!("expected ListDone after the replay")
    };
    assert!(revision >= rev_a);
    let rev_b = kv.set(&b, b"2".to_vec(), None).await.unwrap();
    kv.set(&format!("{prefix}-outside"), b"x".to_vec(), None)
        .await
        .unwrap();
    kv.delete(&a).await.unwrap();
    assert_eq!(
        next(&mut watch).await,
        WatchEvent::Put {
            key: b.clone(),
            value: b"2".to_vec(),
            revision: rev_b
        }
    );
    let WatchEvent::Delete { key, revision } = next(&mut watch).await else {
        panic!("expected the delete")
    };
    assert_eq!(key, a);
    assert!(revision > rev_b);
    kv.delete_prefix(prefix).await.unwrap();
}

pub async fn watch_resume_from_revision(kv: &dyn Backend, prefix: &str) {
    let a = format!("{prefix}/a");
    let from = kv.set(&a, b"1".to_vec(), None).await.unwrap();
    kv.set(&a, b"2".to_vec(), None).await.unwrap();
    kv.delete(&a).await.unwrap();
    let mut watch = kv.watch_prefix(&format!("{prefix}/"), Some(from));
    let mut values = Vec::new();
    for _ in 0..3 {
        match next(&mut watch).await {
            WatchEvent::Put { value, .. } => values.push(String::from_utf8(value).unwrap()),
            WatchEvent::Delete { .. } => values.push("deleted".into()),
            other => panic!("a resumed watch does not replay: got {other:?}"),
        }
    }
    assert_eq!(values, ["1", "2", "deleted"]);
}

pub async fn session_republishes_after_lease_loss(
    kv: Arc<dyn Backend>,
    prefix: &str,
    ttl: Duration,
) {
    let session = Session::start(kv.clone(), ttl);
    let first = session
        .wait_for_lease(Duration::from_secs(10))
        .await
        .unwrap();
    let mut generation = session.generation();
    let key = format!("{prefix}/node");
    session.put(&key, b"up".to_vec()).await.unwrap();
    assert_eq!(kv.get(&key).await.unwrap().unwrap().lease, Some(first));
    // The lease is known before the session's first publication under it
    // ends; only a publication after that one is a re-publication.
    let seen = *generation.wait_for(|g| *g >= 1).await.unwrap();

    // Someone (an etcd wipe, an expiry during an outage) takes the lease away.
    kv.revoke_lease(first).await.unwrap();
    assert_eq!(kv.get(&key).await.unwrap(), None);
    tokio::time::timeout(
        ttl * 2 + Duration::from_secs(5),
        generation.wait_for(|g| *g > seen),
    )
    .await
    .expect("session re-grants its lease")
    .unwrap();
    let back = kv.get(&key).await.unwrap().expect("key re-published");
    assert_ne!(back.lease, Some(first));
    assert_eq!(back.lease, session.lease_id());

    session.delete(&key).await.unwrap();
    assert_eq!(kv.get(&key).await.unwrap(), None);
    session.put(&key, b"again".to_vec()).await.unwrap();
    drop(session);
    let gone = eventually(Duration::from_secs(5), || async {
        kv.get(&key).await.unwrap().is_none()
    })
    .await;
    assert!(gone, "dropping the session revokes its lease");
}

/// The next watch event, failing the test after 10 s.
pub async fn next(watch: &mut Watch) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("watch event within 10 s")
        .expect("watch stream open")
}

/// Polls `check` every 50 ms until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
