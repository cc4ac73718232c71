//! Starting the tier's child processes: nginx, haproxy and workers.
//!
//! Every child gets its own process group (a Ctrl-C at the terminal reaches
//! only the supervisor, which then stops the children in the right order)
//! and a parent-death signal (if the supervisor is killed outright, its
//! children do not linger). Children are reaped by the supervisor through
//! `waitpid` on their pids ([`try_reap`]), never through `Child::wait`.
//!
//! Spawning must happen on the supervisor's main thread: the parent-death
//! signal fires when the *thread* that forked exits.
//!
//! Workers do not bind their ports: the supervisor binds each worker port
//! once and hands the listening socket to every process that fills the slot,
//! as fd 3 (`--listen-fd 3`), the way unicorn and einhorn do. Because the
//! supervisor keeps its copy open, a connection haproxy makes in the
//! moments after a worker dies waits in the kernel's accept queue instead
//! of being refused (a refused connection would fail its retries at once).

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::mpsc::UnboundedSender;

use super::event::Event;
use crate::config::Config;

/// The fd number a worker finds its inherited listening socket at.
pub const LISTEN_FD: RawFd = 3;

/// Spawns `program` with the supervisor's conventions. stdout is piped when
/// `capture_stdout` (workers: ready line and events), else inherited.
/// `listener`, if given, is handed to the child as fd 3.
pub fn spawn(
    program: &Path,
    args: &[OsString],
    capture_stdout: bool,
    listener: Option<RawFd>,
) -> std::io::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(if capture_stdout {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .stderr(Stdio::inherit())
        .process_group(0);
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (prctl, dup2, fcntl) on fds it owns.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            if let Some(fd) = listener {
                pass_fd(fd)?;
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// In the child: makes `fd` available as fd 3 across exec.
fn pass_fd(fd: RawFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    use std::os::fd::BorrowedFd;
    // SAFETY: `fd` is the supervisor's listener, open for the whole call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    if fd == LISTEN_FD {
        // Already in place: only clear close-on-exec.
        fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::empty())).map_err(std::io::Error::from)?;
    } else {
        // dup2 onto 3; the copy does not have close-on-exec.
        let rc = unsafe { nix::libc::dup2(fd, LISTEN_FD) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

pub fn nginx_args(config: &Config) -> Vec<OsString> {
    let run = &config.run_dir;
    vec![
        "-p".into(),
        run.into(),
        "-c".into(),
        run.join("nginx.conf").into(),
        "-e".into(),
        run.join("nginx-error.log").into(),
    ]
}

pub fn haproxy_args(config: &Config) -> Vec<OsString> {
    vec![
        "-db".into(),
        "-f".into(),
        config.run_dir.join("haproxy.cfg").into(),
    ]
}

pub fn worker_args(config: &Config) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "worker".into(),
        "--bundle".into(),
        config.bundle.clone().into(),
        "--listen-fd".into(),
        LISTEN_FD.to_string().into(),
        "--events".into(),
        "--render-timeout-ms".into(),
        config.render_timeout_ms.to_string().into(),
        "--heap-limit-mb".into(),
        config.heap_limit_mb.to_string().into(),
        "--semi-space-mb".into(),
        config.semi_space_mb.to_string().into(),
        "--max-body-bytes".into(),
        (config.max_body_mb << 20).to_string().into(),
    ];
    if config.snapshot {
        args.push("--snapshot".into());
        args.push(config.snapshot_file().into());
    }
    if !config.v8_flags.trim().is_empty() {
        args.push("--v8-flags".into());
        args.push(config.v8_flags.clone().into());
    }
    args
}

/// Forwards a worker's stdout lines to the supervisor, on a thread.
pub fn forward_lines(slot: usize, pid: Pid, stdout: ChildStdout, tx: UnboundedSender<Event>) {
    let _ = std::thread::Builder::new()
        .name(format!("ssrd-w{}-stdout", slot + 1))
        .spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(Event::Line { slot, pid, line }).is_err() {
                    break;
                }
            }
        });
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
pub fn signal(pid: Pid, signal: Signal) {
    let _ = nix::sys::signal::kill(pid, signal);
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Exit {
    Code(i32),
    Signal(Signal),
    /// Reaped by someone else, or otherwise unknowable.
    Unknown,
}

impl Exit {
    pub fn describe(self) -> String {
        match self {
            Exit::Code(c) => format!("exit code {c}"),
            Exit::Signal(s) => format!("signal {s}"),
            Exit::Unknown => "unknown status".into(),
        }
    }
}

/// Reaps `pid` if it has exited, without blocking.
pub fn try_reap(pid: Pid) -> Option<Exit> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(Exit::Code(code)),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(Exit::Signal(sig)),
        Ok(_) => None,
        Err(nix::errno::Errno::ECHILD) => Some(Exit::Unknown),
        Err(_) => None,
    }
}
