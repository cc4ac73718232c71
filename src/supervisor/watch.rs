//! Dev mode's reload on save (`ssrd dev`, or `dev = true`): the bundle file
//! is watched, and a change that settles becomes a reload through the same
//! checked path as SIGHUP (rollout.rs), so a save that breaks the bundle
//! keeps the old one serving.
//!
//! The directory is watched, not the file: editors and bundlers save by
//! writing a new file and renaming it over the old one, which a watch on
//! the old file's inode would miss. Events are debounced (a build writes
//! in several steps), then only a content change counts: a save of the
//! same bytes, or of the bytes that already failed their check, does
//! nothing, so a broken bundle's error is printed once, not at every save.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use serde_json::json;
use ssrd_worker::log::{self, LogEvent};
use tokio::sync::mpsc::UnboundedSender;

use super::event::Event;
use super::Supervisor;
use crate::bundle_store::sha256_of_file;
use crate::error::{Result, UpError};

/// How long the bundle's directory must be quiet before a change counts.
const SETTLE: Duration = Duration::from_millis(250);

/// The running watch; dropping it stops watching.
pub struct BundleWatch {
    /// Owns the watcher thread and the debouncer's timer.
    _debouncer: Debouncer<RecommendedWatcher>,
}

/// Watches `bundle` and sends [`Event::BundleChanged`] on `tx` when it may
/// have changed (the supervisor decides whether it did).
pub fn start(bundle: &Path, tx: UnboundedSender<Event>) -> Result<BundleWatch> {
    let file = absolute(bundle)?;
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let watched = file.clone();
    let mut debouncer = new_debouncer(SETTLE, move |result: DebounceEventResult| {
        let touched = match result {
            Ok(events) => events.iter().any(|e| e.path == watched),
            // The watch itself failed (e.g. the directory went away):
            // look at the file; an unreadable bundle fails its check.
            Err(_) => true,
        };
        if touched {
            let _ = tx.send(Event::BundleChanged);
        }
    })
    .map_err(|e| UpError::setup(format!("watching {}: {e}", dir.display())))?;
    debouncer
        .watcher()
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| UpError::setup(format!("watching {}: {e}", dir.display())))?;
    Ok(BundleWatch {
        _debouncer: debouncer,
    })
}

/// `path` made absolute without resolving its last component (a symlink
/// to the bundle is watched as the link's directory sees it).
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path)
        .map_err(|e| UpError::config(format!("the bundle path {}: {e}", path.display())))
}

impl Supervisor {
    /// The bundle file may have changed: reload if its content is new.
    pub(super) fn on_bundle_changed(&mut self) {
        let sha256 = sha256_of_file(&self.config.bundle);
        let current = self.store.current().map(|c| c.sha256.as_str());
        if Some(sha256.as_str()) == current || Some(&sha256) == self.watched_sha.as_ref() {
            return;
        }
        log::emit(
            LogEvent::BundleSaved,
            "dev: the bundle changed; reloading",
            json!({"bundle": self.config.bundle, "sha256": sha256}),
        );
        self.watched_sha = Some(sha256);
        self.start_reload();
    }
}
