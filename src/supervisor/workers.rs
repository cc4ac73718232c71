//! The worker processes' life, as the supervisor carries it out: spawn,
//! read their events, put them in and out of haproxy's rotation, act on
//! their exits and on their timers. The decisions are slot.rs's.
//!
//! Whatever the state, a worker that dies is set MAINT in haproxy before
//! anything else happens (unless it retired on purpose and its replacement
//! takes its place at once), so no queued request is sent to a slot with no
//! process behind it.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::json;
use ssrd_worker::events::Event as WorkerEvent;
use ssrd_worker::log::{self, LogEvent};

use super::haproxy_api::ServerState;
use super::reason::Reason;
use super::slot::{self, AfterExit, Due, SlotState, Timeouts};
use super::spawn::{self, ChildSpec, Exit, AUX_FD, EVENTS_FD, LISTEN_FD};
use super::stop_phases::Phase;
use super::{telemetry, Supervisor};
use crate::error::Result;
use crate::templates::BACKEND;

/// A worker that has not printed its ready line by then is killed.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a slot whose worker exited on its heap limit stays in rotation
/// while its replacement starts (connections wait in the accept queue).
const RESPAWN_GRACE: Duration = Duration::from_secs(3);

impl Supervisor {
    pub(super) fn spawn_worker(&mut self, i: usize) {
        let now = Instant::now();
        let Some(bundle) = self.store.current() else {
            return; // cannot happen: up promotes a bundle before starting
        };
        let args = spawn::worker_args(&self.config, bundle);
        let quota = self.policy.request_quota(self.jitter.next());
        let slot = &mut self.slots[i];
        // Events come on a pipe of the worker's own (fd 5), not stdout:
        // nothing the bundle can print reaches it.
        let (events_rx, events_tx) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(pair) => pair,
            Err(e) => {
                log::emit(
                    LogEvent::WorkerPipeFailed,
                    "cannot create a worker's event pipe",
                    json!({"error": e.to_string()}),
                );
                slot.state = SlotState::Waiting {
                    until: now + slot.backoff.after_crash(Duration::ZERO),
                };
                return;
            }
        };
        let mut fds = vec![
            (self.listeners.workers[i].as_raw_fd(), LISTEN_FD),
            (events_tx.as_raw_fd(), EVENTS_FD),
        ];
        if let Some(slate) = &slot.slate {
            ssrd_worker::slate::reset(slate);
            fds.push((slate.as_raw_fd(), AUX_FD));
        }
        let spawned = spawn::spawn(&ChildSpec {
            program: &self.exe,
            args,
            fds,
            env: self.config.otel_env(),
            pipe_stdin: true,
            quiet_stdout: true,
            stderr: None,
        });
        drop(events_tx);
        match spawned {
            Ok(mut child) => {
                let pid = Pid::from_raw(child.id() as i32);
                spawn::forward_lines(i, pid, std::fs::File::from(events_rx), self.tx.clone());
                slot.stdin = child.stdin.take().and_then(spawn::nonblocking);
                slot.pid = Some(pid);
                slot.child = Some(child);
                slot.state = SlotState::Starting { since: now };
                slot.started = now;
                slot.generation = self.generation;
                slot.requests = 0;
                slot.trace_failures = 0;
                slot.cache = Default::default();
                slot.quota = quota;
                slot.last_seen = now;
                slot.kill_reason = None;
                slot.replace_reason = None;
                log::emit(
                    LogEvent::WorkerStarting,
                    "worker starting",
                    json!({"worker": slot.name, "worker_pid": pid.as_raw(), "port": self.config.worker_port(i)}),
                );
                self.brief(i);
            }
            Err(e) => {
                let delay = slot.backoff.after_crash(Duration::ZERO);
                slot.state = SlotState::Waiting { until: now + delay };
                log::emit(
                    LogEvent::WorkerSpawnFailed,
                    "cannot spawn worker",
                    json!({"worker": slot.name, "error": e.to_string()}),
                );
            }
        }
    }

    /// Reaps every worker that has exited.
    pub(super) async fn reap_workers(&mut self) {
        for i in 0..self.slots.len() {
            if let Some(exit) = self.slots[i].pid.and_then(spawn::try_reap) {
                self.on_worker_exit(i, exit).await;
            }
        }
    }

    async fn on_worker_exit(&mut self, i: usize, exit: Exit) {
        let running = self.phase == Phase::Running;
        let slot = &mut self.slots[i];
        let plan = slot::plan_exit(
            slot.state,
            running,
            exit,
            slot.kill_reason.take(),
            slot.replace_reason.take(),
        );
        let pid = slot.pid.take();
        slot.child = None;
        let ran_for = slot.started.elapsed();
        let name = slot.name.clone();
        let fields = json!({
            "worker": name, "worker_pid": pid.map(Pid::as_raw), "status": exit.describe(),
            "reason": plan.reason.map(|r| r.label()),
        });
        if let Some(reason) = plan.reason {
            self.metrics
                .restarts
                .with_label_values(&[reason.label()])
                .inc();
        }
        self.slots[i].stdin = None;
        if plan.reason == Some(Reason::Crash) {
            if exit.self_inflicted() {
                self.strike(i);
            } else if let Some(slate) = &self.slots[i].slate {
                // Killed from outside: the request in flight is no suspect.
                ssrd_worker::slate::reset(slate);
            }
        }
        match plan.after {
            AfterExit::RespawnInRotation => {
                // The slot stays in rotation; the few connections haproxy
                // sends it meanwhile wait in the slot's accept queue for the
                // new worker (at most RESPAWN_GRACE), so even when every
                // worker dies at the same moment no request is refused.
                let (event, msg) = if plan.reason == Some(Reason::HeapLimit) {
                    (
                        LogEvent::WorkerHeapLimitExit,
                        "worker exited on its heap limit; replacement starting",
                    )
                } else {
                    (
                        LogEvent::WorkerDiedReplaced,
                        "worker died; replacement starting in its place",
                    )
                };
                log::emit(event, msg, fields);
                self.slots[i].backoff.reset();
                self.spawn_worker(i);
            }
            AfterExit::Stay => {
                let fields = self.maint_logged(i, fields).await;
                self.slots[i].state = SlotState::Stopped;
                log::emit(LogEvent::WorkerStopped, "worker stopped", fields);
            }
            AfterExit::RespawnNow => {
                let fields = self.maint_logged(i, fields).await;
                if matches!(
                    self.slots[i].state,
                    SlotState::Stopping { respawn: true, .. }
                ) {
                    log::emit(
                        LogEvent::WorkerExitedReplaced,
                        "worker exited; starting its replacement",
                        fields,
                    );
                } else {
                    // It had been serving: a poison request or an outside
                    // kill, not a crash loop. Capacity matters more here.
                    self.slots[i].backoff.reset();
                    log::emit(
                        LogEvent::WorkerDiedRestartNow,
                        "worker died; set MAINT, restarting now",
                        fields,
                    );
                }
                self.spawn_worker(i);
            }
            AfterExit::RespawnAfterBackoff => {
                self.slots[i].first_start = false;
                let fields = self.maint_logged(i, fields).await;
                log::emit(
                    LogEvent::WorkerDiedBackoff,
                    "worker died; set MAINT, restarting after backoff",
                    fields,
                );
                if plan.reason == Some(Reason::Bundle) && self.rollout.current_slot() == Some(i) {
                    log::emit(LogEvent::ReloadAborted, "the new bundle does not start; reload aborted (workers not yet replaced keep the old bundle)",
                        json!({"worker": name}),
                    );
                    self.rollout.abort();
                }
                let slot = &mut self.slots[i];
                let delay = slot.backoff.after_crash(ran_for);
                log::emit(
                    LogEvent::WorkerRestartScheduled,
                    "worker restart scheduled",
                    json!({"worker": name, "delay_ms": delay.as_millis() as u64}),
                );
                slot.state = SlotState::Waiting {
                    until: Instant::now() + delay,
                };
            }
        }
    }

    /// Takes the slot out of rotation and adds how long that took to the
    /// log fields of its exit.
    async fn maint_logged(&mut self, i: usize, mut fields: serde_json::Value) -> serde_json::Value {
        let detected = Instant::now();
        let maint = self.take_out_of_rotation(i).await;
        fields["maint_ms"] = json!(detected.elapsed().as_secs_f64() * 1000.0);
        fields["maint_error"] = json!(maint.err());
        fields
    }

    /// MAINT in haproxy, then end the connections haproxy had already sent
    /// the slot: they wait in its accept queue, and nginx retries an ended
    /// one on a live worker at once instead of after the replacement starts.
    async fn take_out_of_rotation(&mut self, i: usize) -> Result<()> {
        let name = self.slots[i].name.clone();
        self.slots[i].in_rotation = false;
        let maint = self.api.set_state(&name, ServerState::Maint).await;
        let _ = self
            .api
            .command(&format!("shutdown sessions server {BACKEND}/{name}"))
            .await;
        maint
    }

    /// One line from a worker's event pipe (fd 5).
    pub(super) async fn on_line(&mut self, i: usize, pid: Pid, line: &str) {
        let event = match serde_json::from_str::<WorkerEvent>(line) {
            Ok(event) => event,
            Err(e) => {
                log::emit(
                    LogEvent::WorkerLineUnreadable,
                    "unreadable line from a worker",
                    json!({"worker": self.slots[i].name, "line": line, "error": e.to_string()}),
                );
                return;
            }
        };
        match &event {
            WorkerEvent::Request(request) => {
                telemetry::record_request(&self.metrics, request);
                self.note_timeouts(request);
            }
            WorkerEvent::Quarantined(_) => self.metrics.quarantine_refusals.inc(),
            _ => {}
        }
        let slot = &mut self.slots[i];
        if slot.pid != Some(pid) {
            return; // the slot's previous process, finishing its last request
        }
        slot.last_seen = Instant::now();
        let (heap_used, heap_limit, rss) = match &event {
            WorkerEvent::Ready(_) => {
                self.on_ready(i).await;
                return;
            }
            WorkerEvent::Request(r) => {
                slot.requests += 1;
                (r.heap_used, r.heap_limit, None)
            }
            WorkerEvent::Heartbeat(h) => {
                let new = h.trace_export_failures.saturating_sub(slot.trace_failures);
                slot.trace_failures = h.trace_export_failures;
                self.metrics.trace_export_failures.inc_by(new);
                telemetry::record_cache(&self.metrics, &slot.name, slot.cache, h.render_cache);
                slot.cache = h.render_cache;
                (h.heap_used, h.heap_limit, Some(h.rss))
            }
            WorkerEvent::Quarantined(_) => return,
        };
        telemetry::record_memory(&self.metrics, &slot.name, heap_used, rss);
        if slot.state != SlotState::Ready || self.phase != Phase::Running {
            return;
        }
        let due = self.policy.check(
            slot.requests,
            slot.quota,
            heap_used,
            heap_limit,
            rss.unwrap_or(0),
        );
        if let Some(reason) = due {
            self.recycle(i, reason);
        }
    }

    async fn on_ready(&mut self, i: usize) {
        if !matches!(self.slots[i].state, SlotState::Starting { .. })
            || self.phase != Phase::Running
        {
            return;
        }
        let name = self.slots[i].name.clone();
        if let Err(e) = self.api.set_state(&name, ServerState::Ready).await {
            log::emit(
                LogEvent::WorkerReadyFailed,
                "could not set worker READY; will retry",
                json!({"worker": name, "error": e}),
            );
            self.resync = true;
        }
        let slot = &mut self.slots[i];
        slot.state = SlotState::Ready;
        slot.in_rotation = true;
        slot.first_start = false;
        log::emit(
            LogEvent::WorkerInRotation,
            "worker in rotation",
            json!({"worker": name, "worker_pid": slot.pid.map(Pid::as_raw), "boot_s": slot.started.elapsed().as_secs_f64()}),
        );
        self.rollout.finish(i);
        self.announce_if_ready();
        if self.rollout.is_idle()
            && self.generation > 0
            && self.slots.iter().all(|s| s.generation == self.generation)
        {
            log::emit(
                LogEvent::ReloadComplete,
                "reload complete: every worker runs the new bundle",
                json!({"generation": self.generation}),
            );
        }
    }

    /// Acts on every slot timer that has run out.
    pub(super) async fn worker_timers(&mut self, now: Instant) {
        let limits = Timeouts {
            start: START_TIMEOUT,
            heartbeat: self.config.heartbeat_timeout(),
            stop: self.config.shutdown_timeout() + Duration::from_secs(5),
            respawn_grace: RESPAWN_GRACE,
        };
        for i in 0..self.slots.len() {
            match slot::due(&self.slots[i], now, &limits) {
                None => {}
                Some(Due::Spawn) => self.spawn_worker(i),
                Some(Due::LeaveRotation) => {
                    log::emit(
                        LogEvent::WorkerSlowStart,
                        "replacement is slow to start; taking its slot out of rotation",
                        json!({"worker": self.slots[i].name}),
                    );
                    let _ = self.take_out_of_rotation(i).await;
                }
                Some(Due::Kill(reason)) => {
                    let slot = &mut self.slots[i];
                    if let Some(pid) = slot.pid {
                        log::emit(
                            LogEvent::WorkerKilled,
                            &format!("worker {}; killing it", reason_words(reason)),
                            json!({"worker": slot.name, "worker_pid": pid.as_raw(), "reason": reason.label()}),
                        );
                        slot.kill_reason = Some(reason);
                        spawn::signal(pid, Signal::SIGKILL);
                    }
                }
            }
        }
    }
}

fn reason_words(reason: Reason) -> &'static str {
    match reason {
        Reason::StartTimeout => "did not get ready in time",
        Reason::Hung => "stopped sending heartbeats",
        Reason::StopTimeout => "did not stop in time",
        _ => "overran a limit",
    }
}
