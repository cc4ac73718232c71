//! The bundle store: every bundle the tier has accepted, kept by content in
//! `RUN_DIR/bundles/<sha256>.js`, with its V8 snapshot beside it.
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

    /// Copies the bundle at `path` into the store under its hash.
    pub fn stage(&self, path: &Path) -> Result<Stored> {
        let source = std::fs::read(path)
            .map_err(|e| UpError::bundle(format!("reading the bundle {}: {e}", path.display())))?;
        self.stage_bytes(Arc::new(source))
    }

    fn stage_bytes(&self, source: Arc<Vec<u8>>) -> Result<Stored> {
        let parent = self.dir.parent().unwrap_or(Path::new("/"));
        rundir::subdir(parent, "bundles")?;
        let sha256 = hex(&Sha256::digest(source.as_slice()));
        let js_name = format!("{sha256}.js");
        let stored = Stored {
            js: self.dir.join(&js_name),
            snapshot: self.dir.join(format!("{sha256}.snap")),
            sha256,
            source,
        };
        rundir::write_file(&self.dir, &js_name, &stored.source)
            .map_err(|e| UpError::setup(format!("writing {}: {e}", stored.js.display())))?;
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
        }
    }

    /// Rewrites the current entry's bundle after the run dir lost it (its
    /// snapshot is rebuilt by the next worker that starts).
    pub fn restore(&self) -> Result<()> {
        match &self.current {
            Some(current) if !current.js.is_file() => {
                self.stage_bytes(Arc::clone(&current.source)).map(|_| ())
            }
            _ => Ok(()),
        }
    }
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
}
