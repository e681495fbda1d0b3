//! Optional persistence of the embedded store's lease-less keys to one JSON file, so a
//! single node keeps its cluster state across agent restarts. Keys under a lease are
//! not written: after a restart their owner re-publishes them, as after a lease expiry.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{KvError, Result};
use crate::types::Revision;

#[derive(Serialize, Deserialize)]
struct StoreFile {
    revision: Revision,
    keys: BTreeMap<String, StoredValue>,
}

/// Values are UTF-8 text in practice; anything else is kept as bytes.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredValue {
    Text(String),
    Bytes(Vec<u8>),
}

/// The keys and revision in `path`; a missing file is an empty store at revision 0.
pub(crate) fn load(path: &Path) -> Result<(BTreeMap<String, Vec<u8>>, Revision)> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((BTreeMap::new(), 0)),
        Err(err) => return Err(persist_error(path, err)),
    };
    let file: StoreFile = serde_json::from_str(&text).map_err(|err| persist_error(path, err))?;
    let keys = file
        .keys
        .into_iter()
        .map(|(key, value)| {
            let bytes = match value {
                StoredValue::Text(text) => text.into_bytes(),
                StoredValue::Bytes(bytes) => bytes,
            };
            (key, bytes)
        })
        .collect();
    Ok((keys, file.revision))
}

/// Writes atomically: temp file in the same directory, fsync, rename.
pub(crate) fn save(path: &Path, keys: BTreeMap<String, Vec<u8>>, revision: Revision) -> Result<()> {
    let keys = keys
        .into_iter()
        .map(|(key, bytes)| {
            let value = match String::from_utf8(bytes) {
                Ok(text) => StoredValue::Text(text),
                Err(err) => StoredValue::Bytes(err.into_bytes()),
            };
            (key, value)
        })
        .collect();
    let json =
        serde_json::to_vec(&StoreFile { revision, keys }).expect("store file always serializes");
    let tmp = path.with_extension("json.tmp");
    let write = || -> io::Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|err| persist_error(path, err))
}

fn persist_error(path: &Path, err: impl std::fmt::Display) -> KvError {
    KvError::Persist {
        path: path.to_path_buf(),
        reason: err.to_string(),
    }
}
