//! A map of keys to values kept in a file that survives restarts: the embedded store's
//! lease-less keys, or any owner's records that must be cheap to change one at a time.
//!
//! The file is a journal of JSON lines: a snapshot of every key first, then one line
//! appended per change. A change therefore costs one short write however
//! many keys the store holds; the file is rewritten as a fresh snapshot only once the
//! appended lines outgrow the snapshot.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{KvError, Result};
use crate::types::Revision;

/// Appended lines may grow to this multiple of the snapshot before a rewrite…
const COMPACT_RATIO: u64 = 2;
/// …but never below this, so a small store is not rewritten every few changes.
const COMPACT_MIN_BYTES: u64 = 256 * 1024;

/// The first line: every key at a revision.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    revision: Revision,
    keys: BTreeMap<String, StoredValue>,
}

/// Every later line: one key written (`value`) or deleted (no `value`).
#[derive(Serialize, Deserialize)]
struct Record {
    revision: Revision,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<StoredValue>,
}

/// Values are UTF-8 text in practice; anything else is kept as bytes.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredValue {
    Text(String),
    Bytes(Vec<u8>),
}

impl From<Vec<u8>> for StoredValue {
    fn from(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(text) => StoredValue::Text(text),
            Err(err) => StoredValue::Bytes(err.into_bytes()),
        }
    }
}

impl From<StoredValue> for Vec<u8> {
    fn from(value: StoredValue) -> Self {
        match value {
            StoredValue::Text(text) => text.into_bytes(),
            StoredValue::Bytes(bytes) => bytes,
        }
    }
}

/// One change: `Some` writes the key, `None` deletes it.
pub type Change = (String, Option<Vec<u8>>);

/// A file of string keys and byte values, kept in memory too (the snapshot is
/// rewritten from it). Appends are written, not synced: they outlive the process
/// (the page cache keeps them), not a power loss, where a cut-short tail is dropped;
/// a sync per change would make changing thousands of keys I/O-bound.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    keys: BTreeMap<String, Vec<u8>>,
    revision: Revision,
    snapshot_bytes: u64,
    appended_bytes: u64,
}

impl Journal {
    /// Loads `path` (a missing file is an empty map at revision 0) and starts a
    /// fresh journal from a snapshot of it.
    pub fn open(path: &Path) -> Result<Self> {
        let (keys, revision) = load(path)?;
        let (file, snapshot_bytes) = write_snapshot(path, &keys, revision)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            keys,
            revision,
            snapshot_bytes,
            appended_bytes: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every key and its value, changes included.
    pub fn keys(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.keys
    }

    /// The revision of the last change (the caller's numbering; 0 if it has none).
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Records `changes`, made up to `revision`: appended as lines, or, once the
    /// lines have outgrown the snapshot, by rewriting the file as a new snapshot.
    pub fn apply(&mut self, changes: Vec<Change>, revision: Revision) -> Result<()> {
        let mut lines = Vec::new();
        for (key, value) in changes {
            let record = Record {
                revision,
                key,
                value: value.clone().map(StoredValue::from),
            };
            serde_json::to_writer(&mut lines, &record).expect("records always serialize");
            lines.push(b'\n');
            match value {
                Some(value) => self.keys.insert(record.key, value),
                None => self.keys.remove(&record.key),
            };
        }
        self.revision = revision;
        let limit = (self.snapshot_bytes * COMPACT_RATIO).max(COMPACT_MIN_BYTES);
        if self.appended_bytes > limit {
            let (file, snapshot_bytes) = write_snapshot(&self.path, &self.keys, revision)?;
            (self.file, self.snapshot_bytes, self.appended_bytes) = (file, snapshot_bytes, 0);
            return Ok(());
        }
        match self.file.write_all(&lines) {
            Ok(()) => {
                self.appended_bytes += lines.len() as u64;
                Ok(())
            }
            Err(err) => {
                // Part of a line may be in the file: the next change rewrites it whole.
                self.appended_bytes = u64::MAX;
                Err(persist_error(&self.path, err))
            }
        }
    }
}

/// The keys and revision in `path`: the snapshot line with the appended changes
/// replayed. A last line cut short by a crash (no newline) is ignored; any other
/// unreadable line is an error naming it.
fn load(path: &Path) -> Result<(BTreeMap<String, Vec<u8>>, Revision)> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((BTreeMap::new(), 0)),
        Err(err) => return Err(persist_error(path, err)),
    };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let torn = |index: usize| index + 1 == lines.len() && !complete;
    let Some((first, rest)) = lines.split_first() else {
        return Ok((BTreeMap::new(), 0));
    };
    let snapshot: Snapshot = serde_json::from_str(first)
        .map_err(|err| persist_error(path, format!("line 1 (snapshot): {err}")))?;
    let mut keys: BTreeMap<String, Vec<u8>> = snapshot
        .keys
        .into_iter()
        .map(|(key, value)| (key, value.into()))
        .collect();
    let mut revision = snapshot.revision;
    for (index, line) in rest.iter().enumerate() {
        let record: Record = match serde_json::from_str(line) {
            Ok(record) => record,
            Err(_) if torn(index + 1) => break,
            Err(err) => return Err(persist_error(path, format!("line {}: {err}", index + 2))),
        };
        revision = revision.max(record.revision);
        match record.value {
            Some(value) => keys.insert(record.key, value.into()),
            None => keys.remove(&record.key),
        };
    }
    Ok((keys, revision))
}

/// Writes a snapshot atomically (temp file in the same directory, fsync, rename) and
/// returns the new file open for appending, with its length.
fn write_snapshot(
    path: &Path,
    keys: &BTreeMap<String, Vec<u8>>,
    revision: Revision,
) -> Result<(File, u64)> {
    let keys = keys
        .iter()
        .map(|(key, bytes)| (key.clone(), StoredValue::from(bytes.clone())))
        .collect();
    let mut json =
        serde_json::to_vec(&Snapshot { revision, keys }).expect("snapshots always serialize");
    json.push(b'\n');
    let tmp = path.with_extension("json.tmp");
    let write = || -> io::Result<File> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut file = File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        OpenOptions::new().append(true).open(path)
    };
    let file = write().map_err(|err| persist_error(path, err))?;
    Ok((file, json.len() as u64))
}

fn persist_error(path: &Path, err: impl std::fmt::Display) -> KvError {
    KvError::Persist {
        path: path.to_path_buf(),
        reason: err.to_string(),
    }
}
