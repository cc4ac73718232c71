//! Rolling replacement of workers, one at a time, for reloads and recycling.
//!
//! A reload (SIGHUP or `ssrd reload`) first checks the new bundle in a
//! separate process (`ssrd snapshot`: evaluate it, check the contract, write
//! the snapshot new workers will start from). Only if that succeeds are the
//! workers replaced, one at a time: drain it in haproxy, wait until it is
//! idle, stop it, start a fresh one, set it READY, then the next. At least
//! N-1 workers serve throughout, and no request is failed.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::config::Config;
use crate::recycle::Reason;

/// The queue of workers waiting to be replaced, and the one in progress.
#[derive(Debug, Default)]
pub struct Rollout {
    /// Slots waiting their turn, with why.
    queue: VecDeque<(usize, Reason)>,
    /// The slot being replaced now.
    current: Option<(usize, Reason)>,
}

impl Rollout {
    /// Adds a slot unless it is already waiting or being replaced; true if
    /// it was added.
    pub fn enqueue(&mut self, slot: usize, reason: Reason) -> bool {
        if self.current.map(|c| c.0) == Some(slot) {
            return false;
        }
        if let Some(entry) = self.queue.iter_mut().find(|(s, _)| *s == slot) {
            // A reload outranks a recycle: report the reason that matters.
            if reason == Reason::Reload {
                entry.1 = reason;
            }
            return false;
        }
        self.queue.push_back((slot, reason));
        true
    }

    /// Starts the next replacement if none is in progress.
    pub fn start_next(&mut self) -> Option<(usize, Reason)> {
        if self.current.is_some() {
            return None;
        }
        self.current = self.queue.pop_front();
        self.current
    }

    /// The replacement in progress.
    pub fn current(&self) -> Option<(usize, Reason)> {
        self.current
    }

    /// The slot's replacement is done (its new worker is READY).
    pub fn finish(&mut self, slot: usize) {
        if self.current.map(|c| c.0) == Some(slot) {
            self.current = None;
        }
    }

    /// Drops every pending replacement (e.g. a new bundle does not start).
    pub fn abort(&mut self) {
        self.queue.clear();
        self.current = None;
    }

    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.queue.is_empty()
    }
}

/// Starts the bundle check of a reload: `ssrd snapshot` in a child process
/// (so a bundle that hangs or crashes V8 cannot hurt the supervisor).
pub fn start_check(exe: &Path, config: &Config) -> std::io::Result<Child> {
    let out = if config.snapshot {
        config.snapshot_file()
    } else {
        config.run_dir.join("reload-check.snap")
    };
    let args: Vec<OsString> = vec![
        "snapshot".into(),
        "--bundle".into(),
        config.bundle.clone().into(),
        "--out".into(),
        out.into(),
    ];
    Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_at_a_time_without_duplicates() {
        let mut r = Rollout::default();
        r.enqueue(0, Reason::Requests);
        r.enqueue(1, Reason::Reload);
        r.enqueue(0, Reason::Reload);
        assert_eq!(r.start_next(), Some((0, Reason::Reload)));
        assert_eq!(r.start_next(), None, "one at a time");
        r.enqueue(0, Reason::Heap);
        r.finish(0);
        assert_eq!(r.start_next(), Some((1, Reason::Reload)));
        r.finish(1);
        assert!(r.is_idle(), "slot 0 was in progress when re-enqueued");
    }
}
