//! Persisting the allocator as JSON. The only IO in this crate.
//!
//! Writes go to a temporary file in the same directory, are synced, then renamed over
//! the target, so a crash leaves either the old file or the new one, never a torn one.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use policy::labels::Labels;
use serde::{Deserialize, Serialize};

use crate::allocator::{Identity, IdentityAllocator, Scope, Slot};
use crate::error::IdentityError;
use crate::reserved;

#[derive(Serialize, Deserialize)]
struct StoreFile {
    /// Where the next allocation search starts; absent means "after the highest id".
    #[serde(default)]
    next_id: Option<u32>,
    identities: Vec<StoredIdentity>,
}

#[derive(Serialize, Deserialize)]
struct StoredIdentity {
    id: u32,
    labels: Vec<String>,
    refcount: u32,
}

impl IdentityAllocator {
    /// Loads allocated identities from `path`; a missing file gives a fresh allocator.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, IdentityError> {
        Self::load_scoped(path, Scope::Global)
    }

    /// [`IdentityAllocator::load`] for an allocator of the given scope.
    pub fn load_scoped(path: impl AsRef<Path>, scope: Scope) -> Result<Self, IdentityError> {
        let path = path.as_ref();
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok(Self::with_scope(scope))
            }
            Err(source) => {
                return Err(IdentityError::StoreRead {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let file: StoreFile =
            serde_json::from_str(&text).map_err(|source| IdentityError::StoreParse {
                path: path.to_path_buf(),
                source,
            })?;
        from_store_file(file, scope).map_err(|reason| IdentityError::StoreCorrupt {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Writes allocated identities (not the reserved ones) to `path` atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), IdentityError> {
        let path = path.as_ref();
        let file = StoreFile {
            next_id: Some(self.next_id()),
            identities: self
                .slots()
                .map(|slot| StoredIdentity {
                    id: slot.identity.id,
                    labels: slot.identity.labels.to_strings(),
                    refcount: slot.refcount,
                })
                .collect(),
        };
        let json = serde_json::to_vec(&file).expect("store file always serializes");
        write_atomically(path, &json).map_err(|source| IdentityError::StoreWrite {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Validates everything before building anything: a bad entry rejects the whole file.
fn from_store_file(file: StoreFile, scope: Scope) -> Result<IdentityAllocator, String> {
    let (min, max) = scope.range();
    let mut slots = Vec::with_capacity(file.identities.len());
    let mut seen_ids = BTreeSet::new();
    let mut seen_labels = BTreeSet::new();
    for (index, stored) in file.identities.into_iter().enumerate() {
        let id = stored.id;
        let at = format!("identities[{index}] (id {id})");
        if !(min..=max).contains(&id) {
            return Err(format!("{at}: id outside {min}..={max}"));
        }
        if stored.refcount == 0 {
            return Err(format!("{at}: refcount is 0"));
        }
        if !seen_ids.insert(id) {
            return Err(format!("{at}: duplicate id"));
        }
        let labels = Labels::parse_all(&stored.labels)
            .map_err(|err| format!("{at}: invalid labels: {err}"))?;
        match reserved::reserved_for(&labels) {
            _ if scope == Scope::Local => {}
            Ok(None) => {}
            Ok(Some(reserved_id)) => {
                return Err(format!(
                    "{at}: labels belong to reserved identity {reserved_id}"
                ))
            }
            Err(err) => return Err(format!("{at}: {err}")),
        }
        if !seen_labels.insert(labels.clone()) {
            return Err(format!("{at}: label set already has another id"));
        }
        slots.push(Slot {
            identity: Identity { id, labels },
            refcount: stored.refcount,
        });
    }
    let next_id = match file.next_id {
        Some(next) if (min..=max).contains(&next) => next,
        Some(next) => return Err(format!("next_id {next} outside {min}..={max}")),
        None => match seen_ids.last() {
            Some(&highest) if highest < max => highest + 1,
            _ => min,
        },
    };
    Ok(IdentityAllocator::from_parts(slots, next_id, scope))
}

fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let mut tmp_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename itself must reach the disk too, or a crash could undo it.
        fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir = std::env::temp_dir().join(format!(
                "identity-store-{name}-{}-{nanos}",
                std::process::id()
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn labels(list: &[&str]) -> Labels {
        Labels::parse_all(list).expect("valid test labels")
    }

    #[test]
    fn missing_file_is_an_empty_allocator() {
        let dir = TempDir::new("missing");
        let alloc = IdentityAllocator::load(dir.0.join("identities.json")).unwrap();
        assert_eq!(alloc.list().len(), 8);
    }

    #[test]
    fn round_trip_keeps_ids_refcounts_and_reuse_position() {
        let dir = TempDir::new("roundtrip");
        let path = dir.0.join("state").join("identities.json");
        let mut alloc = IdentityAllocator::new();
        let (web, _) = alloc
            .allocate(&labels(&["k8s:app=web", "k8s:tier=front"]))
            .unwrap();
        alloc
            .allocate(&labels(&["k8s:app=web", "k8s:tier=front"]))
            .unwrap();
        let (db, _) = alloc.allocate(&labels(&["k8s:app=db"])).unwrap();
        let (gone, _) = alloc.allocate(&labels(&["k8s:app=gone"])).unwrap();
        alloc.release(gone.id).unwrap();
        alloc.save(&path).unwrap();

        let mut loaded = IdentityAllocator::load(&path).unwrap();
        assert_eq!(loaded.list(), alloc.list());
        assert_eq!(loaded.refcount(web.id), Some(2));
        assert_eq!(loaded.refcount(db.id), Some(1));
        assert_eq!(loaded.lookup(&labels(&["k8s:app=db"])), Some(db.id));
        let (next, _) = loaded.allocate(&labels(&["k8s:app=new"])).unwrap();
        assert_eq!(
            next.id,
            gone.id + 1,
            "freed id must not be reused after restart"
        );

        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("identities.json")]);
    }

    #[test]
    fn unparsable_file_names_the_path() {
        let dir = TempDir::new("corrupt");
        let path = dir.0.join("identities.json");
        fs::write(&path, "{\"identities\": [ {\"id\": 256, ").unwrap();
        let err = IdentityAllocator::load(&path).unwrap_err();
        assert!(matches!(err, IdentityError::StoreParse { .. }), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn inconsistent_entries_are_rejected_with_their_index() {
        let dir = TempDir::new("inconsistent");
        let path = dir.0.join("identities.json");
        let cases = [
            (
                r#"{"identities":[{"id":7,"labels":["k8s:a=b"],"refcount":1}]}"#,
                "outside",
            ),
            (
                r#"{"identities":[{"id":300,"labels":["k8s:a=b"],"refcount":0}]}"#,
                "refcount is 0",
            ),
            (
                r#"{"identities":[{"id":300,"labels":["k8s:a=b"],"refcount":1},
                                  {"id":300,"labels":["k8s:c=d"],"refcount":1}]}"#,
                "identities[1] (id 300): duplicate id",
            ),
            (
                r#"{"identities":[{"id":300,"labels":["k8s:a=b"],"refcount":1},
                                  {"id":301,"labels":["k8s:a=b"],"refcount":1}]}"#,
                "already has another id",
            ),
            (
                r#"{"identities":[{"id":300,"labels":["reserved:host"],"refcount":1}]}"#,
                "reserved",
            ),
        ];
        for (json, expected) in cases {
            fs::write(&path, json).unwrap();
            let err = IdentityAllocator::load(&path).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(err, IdentityError::StoreCorrupt { .. }),
                "{message}"
            );
            assert!(
                message.contains(expected),
                "{message} should mention {expected}"
            );
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
    }

    #[test]
    fn unreadable_path_names_the_file() {
        let dir = TempDir::new("unreadable");
        // A directory where the file should be: reading fails with something other than NotFound.
        let path = dir.0.join("identities.json");
        fs::create_dir_all(&path).unwrap();
        let err = IdentityAllocator::load(&path).unwrap_err();
        assert!(matches!(err, IdentityError::StoreRead { .. }), "{err}");
        let err = IdentityAllocator::new().save(&path).unwrap_err();
        assert!(matches!(err, IdentityError::StoreWrite { .. }), "{err}");
        assert!(err.to_string().contains("identities.json"), "{err}");
    }
}
