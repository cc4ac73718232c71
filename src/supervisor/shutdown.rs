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
//! [`begin`] and [`step`] decide (pure, unit-tested); `impl Supervisor`
//! below carries the actions out.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;
use ssrd_worker::log;

use super::aux::AuxKind;
use super::slot::SlotState;
use super::spawn;
use super::Supervisor;

/// How long workers get to exit after SIGTERM during shutdown.
const WORKERS_GRACE: Duration = Duration::from_secs(10);
/// How long haproxy gets to exit after SIGTERM.
const HAPROXY_GRACE: Duration = Duration::from_secs(5);

/// Where the tier is in its life.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    Running,
    /// nginx is closing its listener and finishing in-flight requests.
    StopNginx {
        deadline: Instant,
    },
    /// Workers are finishing and exiting.
    StopWorkers {
        deadline: Instant,
    },
    /// haproxy is exiting.
    StopHaproxy {
        deadline: Instant,
    },
    /// Finished, with this exit code.
    Done(i32),
}

/// Which processes are still alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alive {
    pub nginx: bool,
    pub workers: bool,
    pub haproxy: bool,
}

/// What the supervisor does to move shutdown along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGQUIT to nginx: close the listener, finish accepted requests.
    QuitNginx,
    KillNginx,
    /// SIGTERM to every worker: finish, then exit.
    StopWorkers,
    KillWorkers,
    /// SIGTERM to haproxy.
    StopHaproxy,
    KillAll,
}

/// The first stop signal.
pub fn begin(alive: Alive, now: Instant, grace: Duration) -> (Phase, Vec<Action>) {
    if alive.nginx {
        (
            Phase::StopNginx {
                deadline: now + grace,
            },
            vec![Action::QuitNginx],
        )
    } else {
        stop_workers(now)
    }
}

fn stop_workers(now: Instant) -> (Phase, Vec<Action>) {
    (
        Phase::StopWorkers {
            deadline: now + WORKERS_GRACE,
        },
        vec![Action::StopWorkers],
    )
}

/// One tick of shutdown: the next phase and what to do now.
pub fn step(phase: Phase, alive: Alive, now: Instant) -> (Phase, Vec<Action>) {
    match phase {
        Phase::StopNginx { .. } if !alive.nginx => stop_workers(now),
        Phase::StopNginx { deadline } if now > deadline => (phase, vec![Action::KillNginx]),
        Phase::StopWorkers { deadline } if !alive.workers || now > deadline => (
            Phase::StopHaproxy {
                deadline: now + HAPROXY_GRACE,
            },
            vec![Action::KillWorkers, Action::StopHaproxy],
        ),
        Phase::StopHaproxy { .. } if !alive.haproxy => (Phase::Done(0), vec![]),
        Phase::StopHaproxy { deadline } if now > deadline => {
            (Phase::Done(1), vec![Action::KillAll])
        }
        _ => (phase, vec![]),
    }
}

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
            log::info(
                "draining: /health answers 503 while every request is still served; stopping after",
                json!({"drain_seconds": drain_for.as_secs()}),
            );
            self.drain_until = Some(Instant::now() + drain_for);
            self.health.set_draining(true);
            self.metrics.draining.set(1);
            return;
        }
        if self.phase == Phase::Running && self.drain_until.is_some() {
            log::info("stop signal while draining: stopping now", json!({}));
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
            log::warn("second stop signal: killing everything", json!({}));
            self.act(Action::KillAll);
            self.phase = Phase::Done(1);
            return;
        }
        log::info(
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
            log::info("ssrd stopped", json!({}));
        }
        self.phase = phase;
        actions.into_iter().for_each(|a| self.act(a));
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::QuitNginx => self.nginx.signal(Signal::SIGQUIT),
            Action::KillNginx => {
                log::warn("nginx did not finish in time; killing it", json!({}));
                self.nginx.kill(AuxKind::Nginx);
            }
            Action::StopWorkers => {
                log::info("stopping workers", json!({}));
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

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Alive = Alive {
        nginx: true,
        workers: true,
        haproxy: true,
    };

    #[test]
    fn phases_run_in_order_and_each_waits_for_its_processes() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(30);
        let (p, a) = begin(ALL, t0, grace);
        assert_eq!(a, [Action::QuitNginx]);
        // nginx still finishing: nothing to do.
        assert_eq!(step(p, ALL, t0 + Duration::from_secs(1)), (p, vec![]));
        // nginx gone: workers next.
        let no_nginx = Alive {
            nginx: false,
            ..ALL
        };
        let (p, a) = step(p, no_nginx, t0 + Duration::from_secs(2));
        assert!(matches!(p, Phase::StopWorkers { .. }));
        assert_eq!(a, [Action::StopWorkers]);
        // workers gone: haproxy next.
        let only_haproxy = Alive {
            workers: false,
            ..no_nginx
        };
        let (p, a) = step(p, only_haproxy, t0 + Duration::from_secs(3));
        assert!(matches!(p, Phase::StopHaproxy { .. }));
        assert_eq!(a, [Action::KillWorkers, Action::StopHaproxy]);
        let none = Alive {
            haproxy: false,
            ..only_haproxy
        };
        assert_eq!(step(p, none, t0 + Duration::from_secs(4)).0, Phase::Done(0));
    }

    #[test]
    fn deadlines_kill() {
        let t0 = Instant::now();
        let (p, _) = begin(ALL, t0, Duration::from_secs(1));
        let (p2, a) = step(p, ALL, t0 + Duration::from_secs(2));
        assert_eq!((p2, a), (p, vec![Action::KillNginx]));
        // Without nginx, shutdown starts with the workers.
        let (p, a) = begin(
            Alive {
                nginx: false,
                ..ALL
            },
            t0,
            Duration::from_secs(1),
        );
        assert_eq!(a, [Action::StopWorkers]);
        let (p, _) = step(p, ALL, t0 + WORKERS_GRACE + Duration::from_secs(1));
        let late = t0 + WORKERS_GRACE + HAPROXY_GRACE + Duration::from_secs(2);
        assert_eq!(step(p, ALL, late), (Phase::Done(1), vec![Action::KillAll]));
    }
}
