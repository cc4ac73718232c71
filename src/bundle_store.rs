//! The bundle store: every bundle the tier has accepted, kept by content in
//! `RUN_DIR/bundles/<sha256>.js`, with its V8 snapshot beside it, and its
//! source map as `<sha256>.js.map` when it has one (the worker looks for
//! `<bundle>.map` first: docs/worker.md, "Source maps").
//!
//! Workers are always started from the *current* entry, the last bundle
//! that passed its check, never from the file the operator points at: that
//! file matters only at the next reload. So a broken file on disk, with
//! SIGHUP or without, cannot take down a worker that restarts for any other
//! reason. A reload stages the file's content under its hash, checks it
//! (`ssrd snapshot`, which also writes the snapshot), and promotes it only
//! if the check passed; otherwise the staged copy is discarded. The current
//! bundle's bytes are also kept in memory, so the store can be rebuilt if
//! the run dir is deleted under a running tier.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{Result, UpError};
use crate::rundir;

/// One stored bundle.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Hex SHA-256 of the bundle's bytes: its identity.
    pub sha256: String,
    /// The bundle's copy in the store.
    pub js: PathBuf,
    /// Where its snapshot goes.
    pub snapshot: PathBuf,
    /// The bytes, to rewrite the store if it disappears.
    pub source: Arc<Vec<u8>>,
    /// Its source map's bytes (`<sha256>.js.map`), if it has one within
    /// the worker's limit, for the same reason.
    pub map: Option<Arc<Vec<u8>>>,
}

/// The store in one run dir, and which entry workers start from.
#[derive(Debug)]
pub struct BundleStore {
    /// `RUN_DIR/bundles`.
    dir: PathBuf,
    /// The last bundle that passed its check.
    current: Option<Stored>,
}

impl BundleStore {
    pub fn new(run_dir: &Path) -> BundleStore {
        BundleStore {
            dir: run_dir.join("bundles"),
            current: None,
        }
    }

    /// The bundle workers start from.
    pub fn current(&self) -> Option<&Stored> {
        self.current.as_ref()
    }

    /// Copies the bundle at `path` into the store under its hash, and its
    /// source map (`<path>.map`, or the file its `sourceMappingURL` comment
    /// names) beside it as `<sha256>.js.map`, so workers started from the
    /// copy find it.
    pub fn stage(&self, path: &Path) -> Result<Stored> {
        let source = std::fs::read(path)
            .map_err(|e| UpError::bundle(format!("reading the bundle {}: {e}", path.display())))?;
        let map = read_map(path, &source);
        self.stage_bytes(Arc::new(source), map.as_deref())
    }

    fn stage_bytes(&self, source: Arc<Vec<u8>>, map: Option<&[u8]>) -> Result<Stored> {
        let parent = self.dir.parent().unwrap_or(Path::new("/"));
        rundir::subdir(parent, "bundles")?;
        let sha256 = hex(&Sha256::digest(source.as_slice()));
        let js_name = format!("{sha256}.js");
        let stored = Stored {
            js: self.dir.join(&js_name),
            snapshot: self.dir.join(format!("{sha256}.snap")),
            sha256,
            source,
            map: map
                .filter(|m| m.len() as u64 <= MAX_MAP_BYTES)
                .map(|m| Arc::new(m.to_vec())),
        };
        rundir::write_file(&self.dir, &js_name, &stored.source)
            .map_err(|e| UpError::setup(format!("writing {}: {e}", stored.js.display())))?;
        let map_name = format!("{js_name}.map");
        match map {
            Some(map) => rundir::write_file(&self.dir, &map_name, map).map_err(|e| {
                UpError::setup(format!(
                    "writing {}: {e}",
                    self.dir.join(&map_name).display()
                ))
            })?,
            // The same bytes built without a map now: no stale map beside it.
            None => {
                let _ = std::fs::remove_file(self.dir.join(&map_name));
            }
        }
        Ok(stored)
    }

    /// Makes `stored` the bundle workers start from, and removes every
    /// entry but it and the one it replaces.
    pub fn promote(&mut self, stored: Stored) {
        let previous = self.current.replace(stored);
        let keep: Vec<String> = self
            .current
            .iter()
            .chain(previous.as_ref())
            .map(|s| s.sha256.clone())
            .collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.iter().any(|k| name.starts_with(k.as_str())) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Removes a staged entry that failed its check (unless it is current).
    pub fn discard(&self, stored: &Stored) {
        if self.current.as_ref().map(|c| &c.sha256) != Some(&stored.sha256) {
            let _ = std::fs::remove_file(&stored.js);
            let _ = std::fs::remove_file(&stored.snapshot);
            let _ = std::fs::remove_file(ssrd_worker::stack_map::beside(&stored.js));
        }
    }

    /// Rewrites the current entry's bundle after the run dir lost it (its
    /// snapshot is rebuilt by the next worker that starts).
    pub fn restore(&self) -> Result<()> {
        match &self.current {
            Some(current) if !current.js.is_file() => self
                .stage_bytes(
                    Arc::clone(&current.source),
                    current.map.as_deref().map(|m| &m[..]),
                )
                .map(|_| ()),
            _ => Ok(()),
        }
    }
}

/// The worker's limit on a source map: a larger one is copied only its
/// first bytes past the limit (the worker refuses it and says so once).
const MAX_MAP_BYTES: u64 = ssrd_worker::stack_map::MAX_MAP_BYTES;

/// The bytes of the source map of the bundle at `path` (whose bytes are
/// `source`), if it has one as a file: at most one byte past the worker's
/// limit, enough for the worker to refuse it.
fn read_map(path: &Path, source: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let code = std::str::from_utf8(source).ok()?;
    let ssrd_worker::stack_map::MapSource::File(map) = ssrd_worker::stack_map::locate(path, code)?
    else {
        return None; // inline: inside the bundle's bytes already
    };
    let mut bytes = Vec::new();
    std::fs::File::open(map)
        .ok()?
        .take(MAX_MAP_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

/// SHA-256 (hex) of the file at `path`, or "" if it cannot be read (the
/// worker then fails at boot with a clear error anyway).
pub fn sha256_of_file(path: &Path) -> String {
    std::fs::read(path)
        .map(|source| hex(&Sha256::digest(source.as_slice())))
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_by_content_promotes_and_prunes() {
        let run = std::env::temp_dir().join(format!("ssrd-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&run);
        rundir::prepare(&run).unwrap();
        let src = run.join("b.js");
        let mut store = BundleStore::new(&run);
        let stage = |store: &BundleStore, text: &str| {
            std::fs::write(&src, text).unwrap();
            store.stage(&src).unwrap()
        };
        let a = stage(&store, "a");
        assert_eq!(
            a.sha256,
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
        );
        assert_eq!(std::fs::read_to_string(&a.js).unwrap(), "a");
        store.promote(a.clone());
        let b = stage(&store, "b");
        store.discard(&b);
        assert!(!b.js.exists(), "a failed check leaves nothing");
        assert_eq!(store.current().unwrap().sha256, a.sha256);
        let c = stage(&store, "c");
        store.promote(c.clone());
        let d = stage(&store, "d");
        store.promote(d.clone());
        assert!(!a.js.exists(), "two promotions later, pruned");
        assert!(c.js.exists() && d.js.exists(), "current and previous kept");
        std::fs::remove_file(&d.js).unwrap();
        store.restore().unwrap();
        assert_eq!(std::fs::read_to_string(&d.js).unwrap(), "d");
        let _ = std::fs::remove_dir_all(&run);
    }

    #[test]
    fn the_source_map_travels_with_the_bundle() {
        let run = std::env::temp_dir().join(format!("ssrd-store-map-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&run);
        rundir::prepare(&run).unwrap();
        let mut store = BundleStore::new(&run);
        // Beside the bundle as <bundle>.map.
        let src = run.join("b.js");
        std::fs::write(&src, "a()").unwrap();
        std::fs::write(run.join("b.js.map"), "{map of a}").unwrap();
        let a = store.stage(&src).unwrap();
        let a_map = ssrd_worker::stack_map::beside(&a.js);
        assert_eq!(std::fs::read_to_string(&a_map).unwrap(), "{map of a}");
        store.promote(a.clone());
        std::fs::remove_file(&a.js).unwrap();
        std::fs::remove_file(&a_map).unwrap();
        store.restore().unwrap();
        assert_eq!(std::fs::read_to_string(&a_map).unwrap(), "{map of a}");
        // Named by the comment only.
        std::fs::remove_file(run.join("b.js.map")).unwrap();
        std::fs::write(&src, "c()\n//# sourceMappingURL=maps/c.map\n").unwrap();
        std::fs::create_dir_all(run.join("maps")).unwrap();
        std::fs::write(run.join("maps/c.map"), "{map of c}").unwrap();
        let c = store.stage(&src).unwrap();
        let c_map = ssrd_worker::stack_map::beside(&c.js);
        assert_eq!(std::fs::read_to_string(&c_map).unwrap(), "{map of c}");
        store.discard(&c);
        assert!(!c_map.exists(), "a failed check leaves no map either");
        // No map: none in the store.
        std::fs::write(&src, "d()").unwrap();
        let d = store.stage(&src).unwrap();
        assert!(!ssrd_worker::stack_map::beside(&d.js).exists());
        let _ = std::fs::remove_dir_all(&run);
    }
}
