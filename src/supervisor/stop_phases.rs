//! The phases of a graceful stop, as pure decisions: [`begin`] on the first
//! stop signal, [`step`] on every tick after. They only say what to do next
//! (unit-tested below); `shutdown.rs` carries the actions out. A leaf: it
//! knows nothing of the supervisor, so every file that asks "is the tier
//! running?" can import [`Phase`] without importing the shutdown code.

use std::time::{Duration, Instant};

/// How long workers get to exit after SIGTERM during shutdown.
pub const WORKERS_GRACE: Duration = Duration::from_secs(10);
/// How long haproxy gets to exit after SIGTERM.
pub const HAPROXY_GRACE: Duration = Duration::from_secs(5);

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
