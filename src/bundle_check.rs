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
//! same message and exit code as an early one.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::bundle_store::Stored;
use crate::error::{Result, UpError};

/// The whole check (both halves) that takes longer is killed and fails.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The line `ssrd snapshot --announce` prints once the snapshot is written.
pub const WRITTEN: &str = "written";

/// A check whose snapshot is written and whose warm-up half still runs.
pub struct Pending {
    /// `ssrd snapshot --announce`.
    child: Child,
    /// Reads the child's stderr to the end (its error, if any), so a
    /// chatty child never blocks on a full pipe.
    stderr: JoinHandle<String>,
    /// When the check started, for [`TIMEOUT`].
    started: Instant,
}

/// Starts the check and waits until the snapshot is written. A bundle that
/// fails before that is an error saying why.
pub fn start(exe: &Path, stored: &Stored) -> Result<Pending> {
    let started = Instant::now();
    let mut child = Command::new(exe)
        .arg("snapshot")
        .arg("--announce")
        .arg("--bundle")
        .arg(&stored.js)
        .arg("--out")
        .arg(&stored.snapshot)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| UpError::bundle(format!("checking the bundle: cannot run it: {e}")))?;
    let stderr = read_all(child.stderr.take());
    // The first line of stdout, read on a thread so the wait has a deadline.
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take();
    std::thread::spawn(move || {
        let mut line = String::new();
        if let Some(out) = stdout {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let _ = tx.send(line);
    });
    let pending = Pending {
        child,
        stderr,
        started,
    };
    match rx.recv_timeout(TIMEOUT) {
        Ok(line) if line.trim_end() == WRITTEN => Ok(pending),
        // No `written`: the child failed (or died) before writing it.
        Ok(_) => Err(pending.finish().err().unwrap_or_else(|| {
            UpError::bundle("checking the bundle: it exited without writing the snapshot")
        })),
        Err(_) => {
            pending.kill();
            Err(UpError::bundle(format!(
                "checking the bundle: no snapshot within {} s",
                TIMEOUT.as_secs()
            )))
        }
    }
}

impl Pending {
    /// Waits (within what is left of [`TIMEOUT`]) for the warm-up half's
    /// verdict.
    pub fn finish(mut self) -> Result<()> {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(_)) => {
                    let err = self.stderr.join().unwrap_or_default();
                    return Err(UpError::bundle(format!(
                        "the bundle does not load: {}",
                        err.trim()
                    )));
                }
                Ok(None) if self.started.elapsed() < TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(None) => {
                    self.kill();
                    return Err(UpError::bundle(format!(
                        "checking the bundle: its warm-up did not finish within {} s",
                        TIMEOUT.as_secs()
                    )));
                }
                Err(e) => return Err(UpError::bundle(format!("checking the bundle: {e}"))),
            }
        }
    }

    /// Stops the check (when `up` fails for another reason meanwhile).
    pub fn kill(mut self) {
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
