//! The embedded backend against the shared conformance suite, plus what only it does
//! (persistence, replay after a lagging consumer).

use std::sync::Arc;
use std::time::Duration;

use kvstore::conformance::{self, next};
use kvstore::{Backend, Embedded, KvstoreConfig, WatchEvent};

fn embedded() -> Arc<dyn Backend> {
    Arc::new(Embedded::new())
}

const TTL: Duration = Duration::from_millis(300);

#[tokio::test]
async fn basic_get_set_delete() {
    conformance::basic_get_set_delete(&*embedded(), "t").await;
}

#[tokio::test]
async fn prefix_list_and_delete() {
    conformance::prefix_list_and_delete(&*embedded(), "t").await;
}

#[tokio::test]
async fn conditional_writes() {
    conformance::conditional_writes(&*embedded(), "t").await;
}

#[tokio::test]
async fn leases() {
    conformance::leases(&*embedded(), "t").await;
}

#[tokio::test]
async fn lease_expiry() {
    conformance::lease_expiry(&*embedded(), "t", TTL).await;
}

#[tokio::test]
async fn lease_object() {
    conformance::lease_object(embedded(), "t", TTL).await;
}

#[tokio::test]
async fn watch_list_then_changes() {
    conformance::watch_list_then_changes(&*embedded(), "t").await;
}

#[tokio::test]
async fn watch_resume_from_revision() {
    conformance::watch_resume_from_revision(&*embedded(), "t").await;
}

#[tokio::test]
async fn session_republishes_after_lease_loss() {
    conformance::session_republishes_after_lease_loss(embedded(), "t", TTL).await;
}

#[tokio::test]
async fn whole_suite_on_one_store() {
    conformance::run_all(embedded(), "suite", TTL).await;
}

#[tokio::test]
async fn persistent_store_keeps_lease_less_keys_across_restarts() {
    let dir = std::env::temp_dir().join(format!("kvstore-persist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = KvstoreConfig::from_flags::<&str>("embedded", &[]).unwrap();
    let revision = {
        let kv = config.connect(Some(&dir)).await.unwrap();
        let lease = kv.grant_lease(Duration::from_secs(60)).await.unwrap();
        kv.set("durable", b"yes".to_vec(), None).await.unwrap();
        kv.set("leased", b"gone".to_vec(), Some(lease))
            .await
            .unwrap();
        kv.set("deleted", b"x".to_vec(), None).await.unwrap();
        kv.delete("deleted")
            .await
            .unwrap()
            .then_some(())
            .expect("deleted");
        kv.list_prefix("").await.unwrap().revision
    };
    let kv = config.connect(Some(&dir)).await.unwrap();
    assert_eq!(kv.get("durable").await.unwrap().unwrap().value, b"yes");
    assert_eq!(
        kv.get("leased").await.unwrap(),
        None,
        "leased keys are not persisted"
    );
    assert_eq!(kv.get("deleted").await.unwrap(), None);
    let next_revision = kv.set("after", b"1".to_vec(), None).await.unwrap();
    assert!(
        next_revision > revision,
        "revisions continue after a restart"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn lagging_consumer_gets_a_replay() {
    let kv = embedded();
    let mut watch = kv.watch_prefix("lag/", None);
    assert_eq!(next(&mut watch).await, WatchEvent::ListStart);
    assert!(matches!(
        next(&mut watch).await,
        WatchEvent::ListDone { .. }
    ));
    // Far more changes than the live buffer holds, without reading.
    for n in 0..6000 {
        kv.set(&format!("lag/{}", n % 10), n.to_string().into_bytes(), None)
            .await
            .unwrap();
    }
    kv.set("lag/final", b"1".to_vec(), None).await.unwrap();
    let mut saw_replay = false;
    loop {
        match next(&mut watch).await {
            WatchEvent::ListStart => saw_replay = true,
            WatchEvent::Put { key, .. } if key == "lag/final" => break,
            _ => {}
        }
    }
    assert!(
        saw_replay,
        "a consumer that fell behind must get a fresh replay"
    );
}

/// Each change is one appended line; the file is rewritten as a snapshot when the
/// lines outgrow it, and a line cut short by a crash is ignored on the next start.
#[tokio::test]
async fn journal_replays_changes_compacts_and_ignores_a_torn_tail() {
    let dir = std::env::temp_dir().join(format!("kvstore-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join(kvstore::STORE_FILE);
    {
        let kv = Embedded::persistent(&dir).unwrap();
        let lease = kv.grant_lease(Duration::from_secs(60)).await.unwrap();
        for i in 0..100 {
            kv.set(&format!("svc/{i}"), vec![b'a'; 100], None)
                .await
                .unwrap();
        }
        // Far more appended bytes than the snapshot: the file must stay small.
        for round in 0..100u8 {
            for i in 0..50 {
                kv.set(&format!("svc/{i}"), vec![b'b' + round % 20; 100], None)
                    .await
                    .unwrap();
            }
        }
        for i in 90..100 {
            kv.delete(&format!("svc/{i}")).await.unwrap();
        }
        kv.set("svc/0", b"leased now".to_vec(), Some(lease))
            .await
            .unwrap();
        kv.set("bytes", vec![0xff, 0x00, 0xfe], None).await.unwrap();
        let size = std::fs::metadata(&file).unwrap().len();
        assert!(
            size < 1024 * 1024,
            "{size} bytes after 5,000 overwrites: the journal was never compacted"
        );
        std::mem::forget(kv);
    }
    let mut text = std::fs::read(&file).unwrap();
    text.extend_from_slice(br#"{"revision":99999,"key":"svc/torn","val"#);
    std::fs::write(&file, text).unwrap();

    let kv = Embedded::persistent(&dir).unwrap();
    assert_eq!(
        kv.get("svc/0").await.unwrap(),
        None,
        "taken over by a lease"
    );
    assert_eq!(
        kv.get("svc/1").await.unwrap().unwrap().value,
        vec![b'b' + 99 % 20; 100]
    );
    assert_eq!(
        kv.get("svc/89").await.unwrap().unwrap().value,
        vec![b'a'; 100]
    );
    assert_eq!(kv.get("svc/95").await.unwrap(), None, "deleted");
    assert_eq!(kv.get("svc/torn").await.unwrap(), None, "torn line ignored");
    assert_eq!(
        kv.get("bytes").await.unwrap().unwrap().value,
        vec![0xff, 0x00, 0xfe]
    );
    assert_eq!(kv.list_prefix("svc/").await.unwrap().kvs.len(), 89);

    // A broken line that is not the last one is an error naming the line.
    drop(kv);
    let mut text = std::fs::read(&file).unwrap();
    text.extend_from_slice(b"not json\n{\"revision\":1,\"key\":\"k\"}\n");
    std::fs::write(&file, text).unwrap();
    let err = Embedded::persistent(&dir).unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without dropping the store (a crash keeps no `Drop`), a burst of writes
/// reaches the file shortly after, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_the_file_behind_the_puts() {
    let dir = std::env::temp_dir().join(format!("kvstore-behind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let kv = Embedded::persistent(&dir).unwrap();
    for i in 0..2000 {
        kv.set(&format!("svc/{i}"), b"x".to_vec(), None)
            .await
            .unwrap();
    }
    let file = dir.join(kvstore::STORE_FILE);
    let mut complete = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains("\"svc/1999\"") {
            complete = true;
            break;
        }
    }
    assert!(complete, "the last put never reached {}", file.display());
    std::mem::forget(kv);
    let _ = std::fs::remove_dir_all(&dir);
}
