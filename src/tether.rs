//! `ssrd tether [--drain-ms N] -- PROGRAM ARGS…`: runs PROGRAM (nginx) so
//! that nothing it starts outlives the supervisor, and a dead PROGRAM is
//! replaced without dropping what its children were doing.
//!
//! The supervisor gives its children a parent-death signal, but that only
//! reaches direct children: nginx's master forks worker processes that
//! would keep serving, and keep the tier's port, after the supervisor or
//! the master died. The tether sits between the supervisor and nginx:
//!
//! - it asks for SIGUSR2 when the supervisor dies (a signal it can catch)
//!   and is a child subreaper, so nginx's orphaned workers become its own;
//! - it starts PROGRAM in a process group of its own and forwards the
//!   supervisor's signals to it: QUIT (graceful stop), TERM and INT (fast
//!   stop), HUP, USR1 (reopen logs), WINCH;
//! - if PROGRAM dies without being asked to, its group is told to finish
//!   gracefully (SIGQUIT: nginx workers stop accepting and complete the
//!   requests they hold, for up to `--drain-ms`, then are killed) and a new
//!   PROGRAM starts at once on the same inherited socket. Only a PROGRAM
//!   that keeps dying right after start makes the tether give up and exit,
//!   for the supervisor to restart with backoff;
//! - on SIGUSR2 (the supervisor died, or wants everything gone now) it
//!   kills every group it started and exits.
//!
//! Descriptors and environment pass through untouched (nginx's inherited
//! listening socket and its `NGINX` variable).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::prctl;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getppid, Pid};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};
use signal_hook::iterator::Signals;

/// How often the tether looks at its signals and drain deadlines.
const POLL: Duration = Duration::from_millis(20);
/// A PROGRAM that dies this soon after starting counts towards giving up.
const QUICK_DEATH: Duration = Duration::from_secs(2);
/// Quick deaths in a row after which the supervisor takes over.
const GIVE_UP_AFTER: u32 = 3;

/// A process group of an earlier PROGRAM, finishing its work.
struct Draining {
    /// Its group (the old PROGRAM's pid).
    group: Pid,
    /// When it is killed if still there.
    deadline: Instant,
}

/// Runs the tether; returns its exit code (the program's, or 128 + the
/// signal that ended it).
pub fn run(program: &OsString, args: &[OsString], drain: Duration) -> i32 {
    let parent = getppid();
    if prctl::set_pdeathsig(Signal::SIGUSR2).is_err() || getppid() != parent {
        return 1; // the supervisor is already gone
    }
    let _ = prctl::set_child_subreaper(true);
    let mut signals = match Signals::new([
        SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
    ]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ssrd tether: installing signal handlers: {e}");
            return 1;
        }
    };
    let start = || -> Option<(Pid, Instant)> {
        let mut cmd = Command::new(program);
        cmd.args(args).process_group(0);
        // SAFETY: only prctl between fork and exec.
        unsafe {
            cmd.pre_exec(|| prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
        }
        match cmd.spawn() {
            Ok(c) => Some((Pid::from_raw(c.id() as i32), Instant::now())),
            Err(e) => {
                eprintln!("ssrd tether: starting {}: {e}", program.to_string_lossy());
                None
            }
        }
    };
    let Some((mut current, mut started)) = start() else {
        return 127;
    };
    let mut draining: Vec<Draining> = Vec::new();
    let mut stopping = false;
    let mut quick_deaths = 0;
    loop {
        for sig in signals.pending() {
            match sig {
                SIGCHLD => {}
                SIGUSR2 => {
                    // The supervisor died, or wants everything gone now.
                    kill_all(current, &draining);
                    return 1;
                }
                other => {
                    stopping |= matches!(other, SIGTERM | SIGINT | SIGQUIT);
                    if let Ok(sig) = Signal::try_from(other) {
                        let _ = kill(current, sig);
                    }
                }
            }
        }
        if let Some(code) = reap(current) {
            if stopping {
                kill_all(current, &draining);
                return code;
            }
            quick_deaths = if started.elapsed() < QUICK_DEATH {
                quick_deaths + 1
            } else {
                0
            };
            // Its workers (now ours) finish what they accepted, then go.
            let _ = killpg(current, Signal::SIGQUIT);
            draining.push(Draining {
                group: current,
                deadline: Instant::now() + drain,
            });
            if quick_deaths >= GIVE_UP_AFTER {
                eprintln!(
                    "ssrd tether: {} keeps dying right after start; giving up",
                    program.to_string_lossy()
                );
                kill_all(current, &draining);
                return code;
            }
            eprintln!(
                "ssrd tether: {} died (status {code}); starting a new one, the old one's workers finish their requests",
                program.to_string_lossy()
            );
            match start() {
                Some((pid, at)) => (current, started) = (pid, at),
                None => {
                    kill_all(current, &draining);
                    return 127;
                }
            }
        }
        let now = Instant::now();
        draining.retain(|d| {
            let over = now >= d.deadline || killpg(d.group, None).is_err();
            if over {
                let _ = killpg(d.group, Signal::SIGKILL);
            }
            !over
        });
        std::thread::sleep(POLL);
    }
}

/// Reaps every exited child (PROGRAM, and adopted orphans); PROGRAM's exit
/// code once it has exited.
fn reap(program: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, c)) if pid == program => code = Some(c),
            Ok(WaitStatus::Signaled(pid, s, _)) if pid == program => code = Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => {}
        }
    }
}

/// Kills every group the tether started and reaps what it can.
fn kill_all(current: Pid, draining: &[Draining]) {
    let _ = killpg(current, Signal::SIGKILL);
    for d in draining {
        let _ = killpg(d.group, Signal::SIGKILL);
    }
    for _ in 0..200 {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return, // ECHILD: nothing left
            Ok(_) => {}
        }
    }
}
