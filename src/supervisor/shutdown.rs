//! Graceful shutdown, in phases. On SIGTERM the tier first drains for
//! `drain_seconds`: it serves every request as usual while `/health`
//! answers 503, so load balancers and readiness probes take it out of
//! rotation before anything is refused. Then nginx stops accepting and
//! finishes what it accepted, then the workers finish and exit, then
//! haproxy. Each phase has a deadline after which its processes are
//! killed. A stop signal during the drain ends the drain; one during the
//! stop kills everything at once. SIGINT (an operator at a terminal) skips
//! the drain.
//!
//! `stop_phases.rs` decides (pure, unit-tested); this file carries the
//! actions out.

use std::time::Instant;

use nix::sys::signal::Signal;
use serde_json::json;
use ssrd_worker::log::{self, LogEvent};

use super::aux::AuxKind;
use super::slot::SlotState;
use super::spawn;
use super::stop_phases::{begin, step, Action, Alive, Phase};
use super::Supervisor;

impl Supervisor {
    fn alive(&self) -> Alive {
        Alive {
            nginx: self.nginx.pid.is_some(),
            workers: self.slots.iter().any(|s| s.pid.is_some()),
            haproxy: self.haproxy.pid.is_some(),
        }
    }

    /// SIGTERM (`drain`) or SIGINT: the first starts draining (SIGTERM,
    /// with a drain time) or a graceful stop; one during the drain starts
    /// the stop; one during the stop kills everything.
    pub(super) fn on_stop_signal(&mut self, drain: bool) {
        let drain_for = self.config.drain();
        if self.phase == Phase::Running
            && self.drain_until.is_none()
            && drain
            && !drain_for.is_zero()
        {
            log::emit(
                LogEvent::DrainStarted,
                "draining: /health answers 503 while every request is still served; stopping after",
                json!({"drain_seconds": drain_for.as_secs()}),
            );
            self.drain_until = Some(Instant::now() + drain_for);
            self.health.set_draining(true);
            self.metrics.draining.set(1);
            return;
        }
        if self.phase == Phase::Running && self.drain_until.is_some() {
            log::emit(
                LogEvent::DrainCut,
                "stop signal while draining: stopping now",
                json!({}),
            );
        }
        self.stop();
    }

    /// The drain is over: stop.
    pub(super) fn drain_tick(&mut self, now: Instant) {
        if self.drain_until.is_some_and(|until| now >= until) {
            self.stop();
        }
    }

    /// Starts the graceful stop (or, if it is under way, kills everything).
    fn stop(&mut self) {
        self.drain_until = None;
        self.health.set_draining(true);
        self.metrics.draining.set(1);
        if self.phase != Phase::Running {
            log::emit(
                LogEvent::KillingAll,
                "second stop signal: killing everything",
                json!({}),
            );
            self.act(Action::KillAll);
            self.phase = Phase::Done(1);
            return;
        }
        log::emit(
            LogEvent::StopStarted,
            "shutting down: nginx stops accepting, in-flight requests finish",
            json!({}),
        );
        self.rollout.abort();
        self.cancel_check();
        let (phase, actions) = begin(self.alive(), Instant::now(), self.config.shutdown_timeout());
        self.phase = phase;
        actions.into_iter().for_each(|a| self.act(a));
    }

    pub(super) fn shutdown_tick(&mut self) {
        let (phase, actions) = step(self.phase, self.alive(), Instant::now());
        if phase == Phase::Done(0) {
            log::emit(LogEvent::TierStopped, "ssrd stopped", json!({}));
        }
        self.phase = phase;
        actions.into_iter().for_each(|a| self.act(a));
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::QuitNginx => self.nginx.signal(Signal::SIGQUIT),
            Action::KillNginx => {
                log::emit(
                    LogEvent::NginxKilled,
                    "nginx did not finish in time; killing it",
                    json!({}),
                );
                self.nginx.kill(AuxKind::Nginx);
            }
            Action::StopWorkers => {
                log::emit(LogEvent::WorkersStopping, "stopping workers", json!({}));
                for slot in &mut self.slots {
                    match slot.pid {
                        Some(pid) => {
                            spawn::signal(pid, Signal::SIGTERM);
                            slot.state = SlotState::Stopping {
                                since: Instant::now(),
                                respawn: false,
                            };
                        }
                        None => slot.state = SlotState::Stopped,
                    }
                }
            }
            Action::KillWorkers => {
                for pid in self.slots.iter().filter_map(|s| s.pid) {
                    spawn::signal(pid, Signal::SIGKILL);
                }
            }
            Action::StopHaproxy => self.haproxy.signal(Signal::SIGTERM),
            Action::KillAll => self.kill_all(),
        }
    }

    /// SIGKILL to every child.
    pub(super) fn kill_all(&mut self) {
        for pid in self.slots.iter().filter_map(|s| s.pid) {
            spawn::signal(pid, Signal::SIGKILL);
        }
        self.nginx.kill(AuxKind::Nginx);
        self.haproxy.kill(AuxKind::Haproxy);
    }
}
