//! `ssrd up`'s check of the bundle, in a child process so a bundle that
//! hangs or crashes V8 cannot hurt `up`: `ssrd snapshot --announce`
//! evaluates the bundle, checks its contract, writes the snapshot every
//! worker starts from and says `written`, then starts an engine from that
//! snapshot and renders the bundle's warm-up jobs once.
//!
//! `up` waits only for `written` (a bundle that does not evaluate or breaks
//! the contract fails before it, and `up` stops there with the message).
//! The warm-up half runs while the tier starts: its workers need only the
//! snapshot, and they render the same warm-up jobs themselves. Its verdict
//! reaches the supervisor as an event; a failure stops the tier with the
//! same message and exit code as an early one. The check dies with `up`,
//! however `up` ends.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::bundle_store::Stored;
use crate::error::{Result, UpError};

/// The whole check (both halves) that takes longer is killed and fails.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The line `ssrd snapshot --announce` prints once the snapshot is written.
pub const WRITTEN: &str = "written";

/// A running check. Dropping it kills the child (an `up` that fails for
/// another reason meanwhile leaves nothing behind).
pub struct Pending {
    /// `ssrd snapshot --announce`.
    child: Child,
    /// Its stdout's lines, read on a thread so every wait has a deadline;
    /// the channel closes when the child closes stdout (it exited).
    lines: mpsc::Receiver<String>,
    /// Reads the child's stderr to the end (its error, if any), so a
    /// chatty child never blocks on a full pipe.
    stderr: Option<JoinHandle<String>>,
    /// When the check started, for [`TIMEOUT`].
    started: Instant,
}

/// The arguments of `ssrd snapshot` that build (and check) `stored`'s
/// snapshot: also what a reload's check runs (supervisor/rollout.rs).
pub fn args(stored: &Stored) -> Vec<OsString> {
    vec![
        "snapshot".into(),
        "--bundle".into(),
        stored.js.clone().into(),
        "--out".into(),
        stored.snapshot.clone().into(),
    ]
}

/// Starts the check. Call it from `up`'s main thread: the child is killed
/// when the thread that started it ends.
pub fn start(exe: &Path, stored: &Stored) -> Result<Pending> {
    let started = Instant::now();
    let mut cmd = Command::new(exe);
    cmd.args(args(stored))
        .arg("--announce")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec, one system call on the child itself
    // (async-signal-safe), nothing allocated.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| UpError::bundle(format!("checking the bundle: cannot run it: {e}")))?;
    let stderr = read_all(child.stderr.take());
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take();
    std::thread::spawn(move || {
        let Some(out) = stdout else { return };
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(Pending {
        child,
        lines,
        stderr: Some(stderr),
        started,
    })
}

impl Pending {
    /// Waits until the snapshot is written. A bundle that fails before that
    /// is an error saying why.
    pub fn written(&mut self) -> Result<()> {
        loop {
            match self.next_line()? {
                Some(line) if line.trim_end() == WRITTEN => return Ok(()),
                Some(_) => {}
                None => {
                    return Err(self.failure().unwrap_or_else(|| {
                        UpError::bundle(
                            "checking the bundle: it exited without writing the snapshot",
                        )
                    }))
                }
            }
        }
    }

    /// Waits for the warm-up half's verdict.
    pub fn finish(mut self) -> Result<()> {
        while self.next_line()?.is_some() {}
        self.failure().map_or(Ok(()), Err)
    }

    /// The next line the check printed; `None` once it closed its stdout
    /// (it exited). An error past [`TIMEOUT`].
    fn next_line(&mut self) -> Result<Option<String>> {
        let left = TIMEOUT.saturating_sub(self.started.elapsed());
        match self.lines.recv_timeout(left) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            // Dropping it (the caller does) kills it.
            Err(RecvTimeoutError::Timeout) => Err(UpError::bundle(format!(
                "checking the bundle: it did not finish within {} s",
                TIMEOUT.as_secs()
            ))),
        }
    }

    /// Once its stdout is closed: how the check ended, `None` if well.
    fn failure(&mut self) -> Option<UpError> {
        match self.child.wait() {
            Ok(status) if status.success() => None,
            Ok(_) => {
                let err = self
                    .stderr
                    .take()
                    .and_then(|h| h.join().ok())
                    .unwrap_or_default();
                Some(UpError::bundle(format!(
                    "the bundle does not load: {}",
                    err.trim()
                )))
            }
            Err(e) => Some(UpError::bundle(format!("checking the bundle: {e}"))),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Nothing to do once it was waited for: std does not signal a
        // child it has reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_all(pipe: Option<ChildStderr>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}
