//! What a crashed tier left in its run dir, found and cleared before a new
//! `ssrd up` starts there.
//!
//! A live supervisor holds an exclusive lock on `RUN_DIR/ssrd.lock` for its
//! whole life (the kernel drops it when the process dies, however it dies),
//! so a second `ssrd up` on the same run dir is refused while the first
//! runs. Once the lock is ours, any process still running from the run dir
//! is a leftover: one whose command line names a file inside the run dir
//! (nginx, haproxy and workers are all started that way), or an nginx in
//! the process group of the master whose pid file is in the run dir (its
//! workers' command lines name nothing).
//! Those, and only those, are killed; stale pid files go with them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;
use ssrd_worker::log::{self, LogEvent};

use crate::error::{Result, UpError};

/// The run dir's lock, held for the supervisor's life.
#[derive(Debug)]
pub struct RunLock {
    /// Dropping it releases the lock.
    _lock: Flock<File>,
}

/// Takes the run dir's lock, or says who holds it.
pub fn lock(run_dir: &Path) -> Result<RunLock> {
    let path = run_dir.join("ssrd.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| UpError::setup(format!("opening {}: {e}", path.display())))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(RunLock { _lock: lock }),
        Err((_, _)) => {
            let holder = std::fs::read_to_string(run_dir.join("ssrd.pid"))
                .map(|p| format!(" (pid {})", p.trim()))
                .unwrap_or_default();
            Err(UpError::setup(format!(
                "another ssrd up{holder} is running with the run dir {}; stop it first, or use another --run-dir",
                run_dir.display()
            )))
        }
    }
}

/// Kills what a crashed tier left running from `run_dir` and removes its
/// stale pid files. Call with the lock held.
pub fn clear(run_dir: &Path) {
    let me = std::process::id() as i32;
    let mut victims: Vec<(i32, String)> = Vec::new();
    // The process group of a dead tier's nginx: an orphaned nginx worker
    // keeps its master's group even when the master is gone.
    let groups = read_pids(run_dir, &["nginx.pid"]);
    let marker = format!("{}/", run_dir.display());
    for (pid, cmdline, pgid) in processes() {
        if pid == me {
            continue;
        }
        let names_run_dir = cmdline.contains(&marker);
        let in_group = groups.contains(&pgid) && is_proxy(&cmdline);
        if names_run_dir || in_group {
            victims.push((pid, cmdline));
        }
    }
    for (pid, cmdline) in &victims {
        log::emit(
            LogEvent::LeftoverKilled,
            "killing a process left behind by an earlier ssrd in this run dir",
            json!({"pid": pid, "cmdline": cmdline, "run_dir": run_dir}),
        );
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    // Give the kernel a moment to release their ports.
    let deadline = Instant::now() + Duration::from_secs(2);
    while victims.iter().any(|(pid, _)| alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for stale in ["nginx.pid", "ssrd.pid", crate::rundir::STOP_PLAN] {
        let _ = std::fs::remove_file(run_dir.join(stale));
    }
}

/// Kills the nginx and haproxy processes in the process groups named by
/// these pid files in the run dir (an nginx master's workers keep its
/// group after it died). Other members, if a pid was reused, are spared.
pub fn kill_groups(run_dir: &Path, pid_files: &[&str]) {
    let groups = read_pids(run_dir, pid_files);
    if groups.is_empty() {
        return;
    }
    for (pid, cmdline, pgid) in processes() {
        if groups.contains(&pgid) && is_proxy(&cmdline) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn is_proxy(cmdline: &str) -> bool {
    cmdline.starts_with("nginx") || cmdline.starts_with("haproxy")
}

fn read_pids(run_dir: &Path, pid_files: &[&str]) -> Vec<i32> {
    pid_files
        .iter()
        .filter_map(|f| std::fs::read_to_string(run_dir.join(f)).ok())
        .filter_map(|p| p.trim().parse().ok())
        .filter(|p| *p > 1)
        .collect()
}

fn alive(pid: i32) -> bool {
    // A zombie is gone for our purposes; /proc/PID/stat says which.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Every process: pid, command line (arguments joined by spaces), group.
fn processes() -> Vec<(i32, String, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let base = PathBuf::from(format!("/proc/{pid}"));
            let raw = std::fs::read(base.join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            let stat = std::fs::read_to_string(base.join("stat")).ok()?;
            // Fields after the command name: state ppid pgrp …
            let pgid = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(2)?
                .parse()
                .ok()?;
            Some((pid, cmdline.trim().to_string(), pgid))
        })
        .collect()
}

impl RunLock {
    /// The lock file's descriptor must never reach a child (it would hold
    /// the lock after the supervisor died): std opens it close-on-exec.
    #[cfg(test)]
    fn is_cloexec(&self) -> bool {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag};
        use std::os::fd::AsFd;
        fcntl(self._lock.as_fd(), FcntlArg::F_GETFD)
            .map(|f| FdFlag::from_bits_truncate(f).contains(FdFlag::FD_CLOEXEC))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_holder_at_a_time_and_leftovers_are_killed() {
        let dir = std::env::temp_dir().join(format!("ssrd-leftovers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let held = lock(&dir).unwrap();
        assert!(held.is_cloexec());
        assert!(lock(&dir).unwrap_err().context.contains("another ssrd up"));
        drop(held);
        let again = lock(&dir).unwrap();
        // A process whose command line names a file in the run dir, and
        // one that does not.
        let spawn = |arg: PathBuf| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg("sleep 30; : \"$0\"")
                .arg(arg)
                .spawn()
                .unwrap()
        };
        let mut stray = spawn(dir.join("haproxy.cfg"));
        let mut bystander = spawn(std::env::temp_dir().join("elsewhere.cfg"));
        std::thread::sleep(Duration::from_millis(100));
        clear(&dir);
        assert!(
            stray.try_wait().unwrap().is_some(),
            "the leftover is killed"
        );
        assert!(
            bystander.try_wait().unwrap().is_none(),
            "others are left alone"
        );
        let _ = bystander.kill();
        let _ = bystander.wait();
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
