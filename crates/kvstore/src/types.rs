//! Values that cross the [`Backend`](crate::Backend) boundary.

use std::future::Future;
use std::pin::Pin;

/// The store-wide revision counter: every change increments it by one.
pub type Revision = i64;

/// A lease id as etcd hands it out (never 0).
pub type LeaseId = i64;

/// A boxed `Send` future: what the object-safe [`Backend`](crate::Backend) methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One stored key with its revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the change that created the key (since it last did not exist).
    pub create_revision: Revision,
    /// Revision of the change that last wrote the key.
    pub mod_revision: Revision,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

impl KeyValue {
    /// The value as text, lossily (keys and values in this project are UTF-8).
    pub fn value_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }
}

/// The keys under a prefix and the store revision the listing was taken at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub kvs: Vec<KeyValue>,
    pub revision: Revision,
}

/// What a prefix watch yields.
///
/// A watch first replays the keys that exist (`ListStart`, one `Put` per key,
/// `ListDone`) unless it resumes from a revision the store still remembers. It
/// replays again whenever it could not resume (history compacted, store reset, the
/// consumer fell too far behind): the `Put`s between a `ListStart` and its `ListDone`
/// are then the complete content of the prefix, and a consumer forgets every key it
/// holds that was not among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    ListStart,
    Put {
        key: String,
        value: Vec<u8>,
        revision: Revision,
    },
    Delete {
        key: String,
        revision: Revision,
    },
    /// The replay is complete; the stream continues with changes after `revision`.
    ListDone {
        revision: Revision,
    },
}

impl WatchEvent {
    /// The key of a `Put` or `Delete`.
    pub fn key(&self) -> Option<&str> {
        match self {
            WatchEvent::Put { key, .. } | WatchEvent::Delete { key, .. } => Some(key),
            _ => None,
        }
    }
}
