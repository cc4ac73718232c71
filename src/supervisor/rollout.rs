//! Rolling replacement of workers, one at a time: for reloads (a new
//! bundle) and for recycling (request quota, heap, RSS).
//!
//! A reload (SIGHUP or `ssrd reload`) stages the bundle file's content in
//! the bundle store and checks it in a separate process (`ssrd snapshot`:
//! evaluate it, check the contract, write the snapshot new workers will
//! start from). Only if that succeeds does it become the store's current
//! bundle and is every worker queued for replacement; otherwise the staged
//! copy is dropped and workers, even ones that restart for other reasons,
//! keep starting from the last good bundle. A recycle queues one worker.
//!
//! Replacing one worker: DRAIN in haproxy, wait until haproxy has no session
//! on it, SIGTERM (it finishes what it has), start a fresh one in the same
//! slot, READY when it reports ready, then the next in the queue. At least
//! N-1 workers serve throughout, and no request is failed.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;
use ssrd_worker::log::{self, LogEvent};

use super::haproxy_api::ServerState;
use super::reason::Reason;
use super::slot::SlotState;
use super::spawn::{self, ChildSpec};
use super::stop_phases::Phase;
use super::Supervisor;
use crate::bundle_store::Stored;

/// A reload's bundle check that takes longer is killed and fails.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

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

    /// The slot being replaced now.
    pub fn current_slot(&self) -> Option<usize> {
        self.current.map(|c| c.0)
    }

    /// The slot's replacement is done (its new worker is READY).
    pub fn finish(&mut self, slot: usize) {
        if self.current_slot() == Some(slot) {
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

/// Whether a slot's turn in the rollout means draining it now. A slot that
/// is not serving gets a fresh process anyway; a reload skips a worker that
/// already runs the new bundle (it was restarted since the reload began).
pub fn should_drain(
    state: SlotState,
    slot_generation: u64,
    generation: u64,
    reason: Reason,
) -> bool {
    state == SlotState::Ready && (reason != Reason::Reload || slot_generation < generation)
}

/// A reload's bundle check in a child process (so a bundle that hangs or
/// crashes V8 cannot hurt the supervisor).
pub struct Check {
    /// `ssrd snapshot` of the staged bundle.
    child: Child,
    /// When it started, for the timeout.
    started: Instant,
    /// The bundle being checked, staged in the store.
    staged: Stored,
}

impl Check {
    pub fn start(exe: &Path, staged: Stored) -> std::io::Result<Check> {
        let child = spawn::spawn(&ChildSpec {
            program: exe,
            args: crate::bundle_check::args(&staged),
            fds: vec![],
            env: vec![],
            pipe_stdin: false,
            quiet_stdout: false,
            stderr: None,
        })?;
        Ok(Check {
            child,
            started: Instant::now(),
            staged,
        })
    }

    /// `Some(passed)` once the check has finished (or timed out).
    fn poll(&mut self) -> Option<bool> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.success()),
            Ok(None) if self.started.elapsed() > CHECK_TIMEOUT => {
                self.cancel();
                Some(false)
            }
            Ok(None) => None,
            Err(_) => Some(false),
        }
    }

    fn cancel(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Supervisor {
    /// SIGHUP: check the bundle on disk, then replace every worker.
    pub(super) fn start_reload(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        if self.check.is_some() {
            self.reload_again = true;
            log::emit(
                LogEvent::ReloadQueued,
                "reload requested during a bundle check; another will follow",
                json!({}),
            );
            return;
        }
        let started = self
            .store
            .stage(&self.config.bundle)
            .map_err(|e| e.context)
            .and_then(|staged| {
                let sha256 = staged.sha256.clone();
                Check::start(&self.exe, staged)
                    .map(|check| (check, sha256))
                    .map_err(|e| format!("cannot run the bundle check: {e}"))
            });
        match started {
            Ok((check, sha256)) => {
                log::emit(
                    LogEvent::ReloadChecking,
                    "reload: checking the bundle",
                    json!({"bundle": self.config.bundle, "sha256": sha256}),
                );
                self.check = Some(check);
            }
            Err(e) => {
                self.metrics.reloads.with_label_values(&["failed"]).inc();
                log::emit(
                    LogEvent::ReloadUncheckable,
                    "reload: the bundle cannot be checked; workers keep the old bundle",
                    json!({"error": e}),
                );
            }
        }
    }

    /// Acts on a finished bundle check.
    pub(super) fn poll_check(&mut self) {
        let Some(passed) = self.check.as_mut().and_then(Check::poll) else {
            return;
        };
        let Some(check) = self.check.take() else {
            return;
        };
        if passed {
            let sha256 = check.staged.sha256.clone();
            self.store.promote(check.staged);
            self.generation += 1;
            self.publish_bundle();
            self.metrics.reloads.with_label_values(&["ok"]).inc();
            log::emit(
                LogEvent::ReloadAccepted,
                "reload: bundle is good; replacing workers one at a time",
                json!({"generation": self.generation, "workers": self.slots.len(), "sha256": sha256}),
            );
            for i in 0..self.slots.len() {
                self.rollout.enqueue(i, Reason::Reload);
            }
        } else {
            self.store.discard(&check.staged);
            self.metrics.reloads.with_label_values(&["failed"]).inc();
            log::emit(LogEvent::ReloadRejected, "reload: the bundle failed its check (see the error above); workers keep the old bundle",
                json!({"bundle": self.config.bundle, "sha256": check.staged.sha256}),
            );
        }
        if std::mem::take(&mut self.reload_again) {
            self.start_reload();
        }
    }

    /// Stops a bundle check in progress (shutdown).
    pub(super) fn cancel_check(&mut self) {
        if let Some(mut check) = self.check.take() {
            check.cancel();
            self.store.discard(&check.staged);
        }
    }

    /// Queues a worker that is due for recycling.
    pub(super) fn recycle(&mut self, i: usize, reason: Reason) {
        if self.rollout.enqueue(i, reason) {
            let slot = &self.slots[i];
            log::emit(
                LogEvent::WorkerDue,
                "worker due for replacement",
                json!({"worker": slot.name, "reason": reason.label(), "requests": slot.requests, "quota": slot.quota}),
            );
        }
    }

    /// Moves the rollout along: stops drained workers, starts the next
    /// replacement.
    pub(super) async fn rollout_tick(&mut self) {
        if self
            .slots
            .iter()
            .any(|s| matches!(s.state, SlotState::Draining { .. }))
        {
            self.stop_idle_draining().await;
        }
        if let Some((i, reason)) = self.rollout.start_next() {
            self.begin_replace(i, reason).await;
        }
    }

    async fn begin_replace(&mut self, i: usize, reason: Reason) {
        let slot = &self.slots[i];
        if !should_drain(slot.state, slot.generation, self.generation, reason) {
            self.rollout.finish(i);
            return;
        }
        let name = slot.name.clone();
        if let Err(e) = self.api.set_state(&name, ServerState::Drain).await {
            log::emit(
                LogEvent::WorkerDrainFailed,
                "could not drain worker; skipping its replacement",
                json!({"worker": name, "error": e}),
            );
            self.rollout.finish(i);
            return;
        }
        let slot = &mut self.slots[i];
        slot.in_rotation = false;
        slot.replace_reason = Some(reason);
        slot.state = SlotState::Draining {
            since: Instant::now(),
        };
        log::emit(
            LogEvent::WorkerReplacing,
            "replacing worker",
            json!({"worker": name, "reason": reason.label(), "requests": slot.requests}),
        );
    }

    /// Stops draining workers once haproxy has no session on them.
    async fn stop_idle_draining(&mut self) {
        let stats = self.api.stats().await.unwrap_or_default();
        let limit = self.config.shutdown_timeout();
        for slot in &mut self.slots {
            let SlotState::Draining { since } = slot.state else {
                continue;
            };
            let busy = stats.iter().any(|s| s.name == slot.name && s.scur > 0);
            if !busy || since.elapsed() > limit {
                if let Some(pid) = slot.pid {
                    spawn::signal(pid, Signal::SIGTERM);
                }
                slot.state = SlotState::Stopping {
                    since: Instant::now(),
                    respawn: true,
                };
            }
        }
    }
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

    #[test]
    fn who_is_drained() {
        let now = Instant::now();
        assert!(should_drain(SlotState::Ready, 0, 1, Reason::Reload));
        assert!(
            !should_drain(SlotState::Ready, 1, 1, Reason::Reload),
            "already runs the new bundle"
        );
        assert!(should_drain(SlotState::Ready, 1, 1, Reason::Rss));
        assert!(
            !should_drain(SlotState::Starting { since: now }, 0, 1, Reason::Reload),
            "a starting worker loads the new bundle anyway"
        );
    }
}
