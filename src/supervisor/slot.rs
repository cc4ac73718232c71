//! A worker slot: one port and one haproxy server name, filled by one
//! process at a time, and the decisions about it as pure functions (what to
//! do when its process exits; which timer is due). workers.rs carries them
//! out.
//!
//! ```text
//!  Waiting ──spawn──▶ Starting ──ready line──▶ Ready ──recycle/reload──▶ Draining
//!     ▲                  │                       │                          │ idle
//!     └── backoff ◀── crash / hung / no ready ◀──┘               Stopping ◀─┘
//!                                                                   │ exited
//!                                                   spawn at once ◀─┘
//! ```

use std::fs::File;
use std::process::{Child, ChildStdin};
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use ssrd_worker::exit_code;

use super::reason::Reason;
use super::restart::Backoff;
use super::spawn::Exit;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SlotState {
    /// Spawned; waiting for its ready line.
    Starting { since: Instant },
    /// READY in haproxy, taking requests.
    Ready,
    /// DRAIN in haproxy; waiting for it to be idle before stopping it.
    Draining { since: Instant },
    /// SIGTERM sent; waiting for it to exit. `respawn`: replace it then.
    Stopping { since: Instant, respawn: bool },
    /// Dead; respawned when the backoff delay is over.
    Waiting { until: Instant },
    /// Dead and staying dead (shutdown).
    Stopped,
}

impl SlotState {
    /// The `ssrd_workers{state}` label.
    pub fn label(self) -> &'static str {
        match self {
            SlotState::Starting { .. } => "starting",
            SlotState::Ready => "ready",
            SlotState::Draining { .. } | SlotState::Stopping { .. } => "draining",
            SlotState::Waiting { .. } | SlotState::Stopped => "dead",
        }
    }

    /// Every label, so the gauge shows zeros from the start.
    pub const LABELS: [&'static str; 4] = ["starting", "ready", "draining", "dead"];
}

/// One worker position and whichever process currently fills it.
pub struct Slot {
    /// haproxy's server name (w1, w2, …).
    pub name: String,
    /// Where the slot is in its life cycle.
    pub state: SlotState,
    /// The current process, if any.
    pub pid: Option<Pid>,
    /// The std handle of that process (kept so its pipes live with it).
    pub child: Option<Child>,
    /// When the current process was spawned.
    pub started: Instant,
    /// The bundle generation the current process loaded.
    pub generation: u64,
    /// Requests the current process has served.
    pub requests: u64,
    /// The current process's count of failed trace exports, as last
    /// reported (the metric grows by the difference).
    pub trace_failures: u64,
    /// The current process's render cache figures, as last reported (the
    /// counters grow by the difference).
    pub cache: ssrd_worker::events::CacheFigures,
    /// Requests after which it is recycled (jittered), if recycling.
    pub quota: Option<u64>,
    /// Last event from the process: heartbeats prove the render thread lives.
    pub last_seen: Instant,
    /// Delay policy for crash restarts.
    pub backoff: Backoff,
    /// Set when the supervisor kills the process, to name the restart reason.
    pub kill_reason: Option<Reason>,
    /// Set when the process is being replaced, to name the restart reason.
    pub replace_reason: Option<Reason>,
    /// Whether haproxy may send this slot new requests (READY).
    pub in_rotation: bool,
    /// Its first worker is starting, in rotation from the tier's start: it
    /// may take up to the start timeout (not the respawn grace) to be ready.
    pub first_start: bool,
    /// The slot's slate: every process filling the slot writes the request
    /// it renders there (as fd 4), read back if the process dies.
    pub slate: Option<File>,
    /// The current process's control input (quarantines).
    pub stdin: Option<ChildStdin>,
}

impl Slot {
    /// An empty slot whose first process is due now.
    pub fn new(name: String, now: Instant) -> Slot {
        Slot {
            name,
            state: SlotState::Waiting { until: now },
            pid: None,
            child: None,
            started: now,
            generation: 0,
            requests: 0,
            trace_failures: 0,
            cache: Default::default(),
            quota: None,
            last_seen: now,
            backoff: Backoff::default(),
            kill_reason: None,
            replace_reason: None,
            in_rotation: false,
            first_start: false,
            slate: new_slate(),
            stdin: None,
        }
    }
}

/// A slate: a small anonymous file (memfd), idle.
fn new_slate() -> Option<File> {
    let fd = nix::sys::memfd::memfd_create(c"ssrd-slate", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .ok()?;
    let file = File::from(fd);
    ssrd_worker::slate::reset(&file);
    Some(file)
}

/// What to do with a slot whose process exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// The tier is stopping: out of rotation, stays empty.
    Stay,
    /// It was serving (it died, was killed, or retired on its heap limit):
    /// start the replacement at once and keep the slot in rotation.
    /// Connections sent to it meanwhile wait in its socket's accept queue
    /// for the replacement (tens of ms), so no request fails; the slot only
    /// leaves rotation if the replacement is slow to come up.
    RespawnInRotation,
    /// Out of rotation, replacement at once (a planned replacement of a
    /// drained worker).
    RespawnNow,
    /// Out of rotation, replacement after a growing delay (it died before
    /// it ever got ready: a crash loop must not spin the CPU).
    RespawnAfterBackoff,
}

/// Why a process exited and what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitPlan {
    /// The restart reason; `None` when the tier is stopping.
    pub reason: Option<Reason>,
    pub after: AfterExit,
}

/// Decides what a worker's exit means. `running`: the tier is not shutting
/// down. `killed_for`/`replacing_for`: why the supervisor ended it, if it did.
pub fn plan_exit(
    state: SlotState,
    running: bool,
    exit: Exit,
    killed_for: Option<Reason>,
    replacing_for: Option<Reason>,
) -> ExitPlan {
    if !running {
        return ExitPlan {
            reason: None,
            after: AfterExit::Stay,
        };
    }
    let planned = matches!(state, SlotState::Stopping { respawn: true, .. });
    let reason = match (killed_for, planned, exit) {
        (Some(r), _, _) => r,
        (None, true, _) => replacing_for.unwrap_or(Reason::Reload),
        (None, false, Exit::Code(exit_code::HEAP_LIMIT)) => Reason::HeapLimit,
        (None, false, Exit::Code(exit_code::BUNDLE)) => Reason::Bundle,
        (None, false, Exit::Code(exit_code::MEMORY_LIMIT)) => Reason::Rss,
        (None, false, _) => Reason::Crash,
    };
    // Killed from outside (kill -9, the OOM killer) before it got ready:
    // no crash loop of its own making, so no backoff either.
    let outside_kill =
        matches!(exit, Exit::Signal(_)) && !exit.self_inflicted() && killed_for.is_none();
    let after = match state {
        SlotState::Ready => AfterExit::RespawnInRotation,
        SlotState::Starting { .. } if outside_kill => AfterExit::RespawnInRotation,
        SlotState::Draining { .. } | SlotState::Stopping { .. } => AfterExit::RespawnNow,
        // It never got ready: a crash loop must not spin the CPU.
        SlotState::Starting { .. } | SlotState::Waiting { .. } | SlotState::Stopped => {
            AfterExit::RespawnAfterBackoff
        }
    };
    ExitPlan {
        reason: Some(reason),
        after,
    }
}

/// The limits the slot timers check.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A worker that has not printed its ready line by then is killed.
    pub start: Duration,
    /// A ready worker silent this long is killed as hung.
    pub heartbeat: Duration,
    /// A stopping worker still alive after this is killed.
    pub stop: Duration,
    /// How long a heap-limit replacement may take before its slot leaves
    /// rotation after all.
    pub respawn_grace: Duration,
}

/// A slot timer that has run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The backoff delay is over: spawn the next process.
    Spawn,
    /// The process overran a limit: kill it, for this reason.
    Kill(Reason),
    /// The replacement kept in rotation is slow: take the slot out.
    LeaveRotation,
}

/// Which of the slot's timers has run out at `now`, if any.
pub fn due(slot: &Slot, now: Instant, limits: &Timeouts) -> Option<Due> {
    let elapsed = |t: Instant| now.saturating_duration_since(t);
    match slot.state {
        SlotState::Waiting { until } if until <= now => Some(Due::Spawn),
        SlotState::Starting { since }
            if slot.in_rotation && !slot.first_start && elapsed(since) > limits.respawn_grace =>
        {
            Some(Due::LeaveRotation)
        }
        SlotState::Starting { since } if elapsed(since) > limits.start => {
            Some(Due::Kill(Reason::StartTimeout))
        }
        SlotState::Ready if elapsed(slot.last_seen) > limits.heartbeat => {
            Some(Due::Kill(Reason::Hung))
        }
        SlotState::Stopping { since, .. } if elapsed(since) > limits.stop => {
            Some(Due::Kill(Reason::StopTimeout))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_clean_shutdown_is_no_crash() {
        let stopping = SlotState::Stopping {
            since: now(),
            respawn: false,
        };
        let plan = plan_exit(stopping, false, Exit::Code(0), None, None);
        assert_eq!(
            plan,
            ExitPlan {
                reason: None,
                after: AfterExit::Stay
            }
        );
    }

    #[test]
    fn exits_while_running_are_named_and_planned() {
        let ready = SlotState::Ready;
        let starting = SlotState::Starting { since: now() };
        let replacing = SlotState::Stopping {
            since: now(),
            respawn: true,
        };
        let kill9 = Exit::Signal(Signal::SIGKILL);
        let cases = [
            // A serving worker killed from outside: at once, not a crash loop.
            (
                ready,
                kill9,
                None,
                None,
                Reason::Crash,
                AfterExit::RespawnInRotation,
            ),
            // Heap retirement: replaced in rotation.
            (
                ready,
                Exit::Code(75),
                None,
                None,
                Reason::HeapLimit,
                AfterExit::RespawnInRotation,
            ),
            // Killed from outside while it started: at once, in rotation.
            (
                starting,
                kill9,
                None,
                None,
                Reason::Crash,
                AfterExit::RespawnInRotation,
            ),
            // Killed by the supervisor for starting too slowly: back off.
            (
                starting,
                kill9,
                Some(Reason::StartTimeout),
                None,
                Reason::StartTimeout,
                AfterExit::RespawnAfterBackoff,
            ),
            // Never got ready: back off.
            (
                starting,
                Exit::Code(3),
                None,
                None,
                Reason::Bundle,
                AfterExit::RespawnAfterBackoff,
            ),
            (
                starting,
                Exit::Code(1),
                None,
                None,
                Reason::Crash,
                AfterExit::RespawnAfterBackoff,
            ),
            // The supervisor's own kills keep their reason.
            (
                ready,
                kill9,
                Some(Reason::Hung),
                None,
                Reason::Hung,
                AfterExit::RespawnInRotation,
            ),
            (
                starting,
                kill9,
                Some(Reason::StartTimeout),
                None,
                Reason::StartTimeout,
                AfterExit::RespawnAfterBackoff,
            ),
            // Planned replacements say why they were planned.
            (
                replacing,
                Exit::Code(0),
                None,
                Some(Reason::Rss),
                Reason::Rss,
                AfterExit::RespawnNow,
            ),
            (
                replacing,
                Exit::Code(0),
                None,
                None,
                Reason::Reload,
                AfterExit::RespawnNow,
            ),
            (
                replacing,
                kill9,
                Some(Reason::StopTimeout),
                Some(Reason::Reload),
                Reason::StopTimeout,
                AfterExit::RespawnNow,
            ),
        ];
        for (state, exit, killed, replacing_for, reason, after) in cases {
            let plan = plan_exit(state, true, exit, killed, replacing_for);
            assert_eq!(
                plan,
                ExitPlan {
                    reason: Some(reason),
                    after
                },
                "{state:?} {exit:?} {killed:?} {replacing_for:?}"
            );
        }
    }

    #[test]
    fn timers() {
        let t0 = now();
        let limits = Timeouts {
            start: Duration::from_secs(60),
            heartbeat: Duration::from_secs(10),
            stop: Duration::from_secs(35),
            respawn_grace: Duration::from_secs(3),
        };
        let mut slot = Slot::new("w1".into(), t0);
        assert_eq!(due(&slot, t0, &limits), Some(Due::Spawn));
        slot.state = SlotState::Waiting {
            until: t0 + Duration::from_millis(200),
        };
        assert_eq!(due(&slot, t0, &limits), None);
        slot.state = SlotState::Starting { since: t0 };
        assert_eq!(due(&slot, t0 + Duration::from_secs(5), &limits), None);
        assert_eq!(
            due(&slot, t0 + Duration::from_secs(61), &limits),
            Some(Due::Kill(Reason::StartTimeout))
        );
        slot.in_rotation = true;
        slot.first_start = true;
        assert_eq!(
            due(&slot, t0 + Duration::from_secs(4), &limits),
            None,
            "the tier's first start may take up to the start timeout"
        );
        slot.first_start = false;
        assert_eq!(
            due(&slot, t0 + Duration::from_secs(4), &limits),
            Some(Due::LeaveRotation)
        );
        slot.state = SlotState::Ready;
        slot.last_seen = t0;
        assert_eq!(due(&slot, t0 + Duration::from_secs(9), &limits), None);
        assert_eq!(
            due(&slot, t0 + Duration::from_secs(11), &limits),
            Some(Due::Kill(Reason::Hung))
        );
        slot.state = SlotState::Stopping {
            since: t0,
            respawn: true,
        };
        assert_eq!(
            due(&slot, t0 + Duration::from_secs(36), &limits),
            Some(Due::Kill(Reason::StopTimeout))
        );
    }
}
