//! What the supervisor's event loop reacts to. signals.rs, the readers of
//! the workers' event pipes (fd 5) in spawn.rs, hangups.rs and watch.rs
//! send these; mod.rs receives them.

use nix::unistd::Pid;

#[derive(Debug)]
pub enum Event {
    /// A signal arrived (SIGCHLD, SIGHUP, SIGTERM, SIGINT).
    Signal(i32),
    /// A line a worker wrote on its event pipe, fd 5 (its contract: events.rs in the
    /// worker crate), with the slot and process it came from.
    Line { slot: usize, pid: Pid, line: String },
    /// nginx reported that the caller of this request hung up (hangups.rs).
    HungUp(String),
    /// Dev mode: the bundle file may have changed (watch.rs).
    BundleChanged,
    /// `up`'s bundle check finished its warm-up half (bundle_check.rs).
    BundleChecked(Result<(), crate::error::UpError>),
}
