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
//! No child binds its own port: the supervisor binds every listening socket
//! once (listeners.rs) and hands it to each process it starts, as fd 3, the
//! way unicorn and einhorn do. Because the supervisor keeps its copy open,
//! a connection that arrives while nginx, haproxy or a worker restarts
//! waits in the kernel's accept queue instead of being refused.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::mpsc::UnboundedSender;

use super::event::Event;
use crate::bundle_store::Stored;
use crate::config::Config;
use ssrd_worker::WorkerOptions;

/// The fd number a child finds its inherited listening socket at (workers:
/// `--listen-fd 3`; haproxy: `bind fd@3`; nginx: `NGINX=3;`).
pub const LISTEN_FD: RawFd = 3;
/// The second inherited fd: a worker's slate (`--slate-fd 4`), haproxy's
/// runtime API channel (`stats socket sockpair@4`).
pub const AUX_FD: RawFd = 4;
/// A worker's event pipe (`--events-fd 5`).
pub const EVENTS_FD: RawFd = 5;

/// How to start one child.
pub struct ChildSpec<'a> {
    /// The binary.
    pub program: &'a Path,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Descriptors to hand over: (the supervisor's fd, the number the child
    /// finds it at). At most [`MAX_FDS`].
    pub fds: Vec<(RawFd, RawFd)>,
    /// Extra environment variables.
    pub env: Vec<(&'static str, String)>,
    /// Pipe stdin (the worker's control input) instead of /dev/null.
    pub pipe_stdin: bool,
    /// Send stdout to /dev/null instead of inheriting it (workers: their
    /// events go to a pipe of their own).
    pub quiet_stdout: bool,
    /// A descriptor to use as stderr instead of the supervisor's (nginx:
    /// the pipe of nginx_log.rs).
    pub stderr: Option<std::os::fd::BorrowedFd<'a>>,
}

/// The most descriptors one child is handed.
pub const MAX_FDS: usize = 4;

/// Spawns a child with the supervisor's conventions (own process group,
/// parent-death signal, the descriptors of `spec.fds` at their numbers).
pub fn spawn(spec: &ChildSpec) -> std::io::Result<Child> {
    if spec.fds.len() > MAX_FDS {
        return Err(std::io::Error::other("too many descriptors for one child"));
    }
    let mut fds = [(-1, -1); MAX_FDS];
    fds[..spec.fds.len()].copy_from_slice(&spec.fds);
    let n = spec.fds.len();
    let mut cmd = Command::new(spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (*k, v)))
        .stdin(if spec.pipe_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if spec.quiet_stdout {
            Stdio::null()
        } else {
            Stdio::inherit()
        })
        .stderr(match spec.stderr {
            Some(fd) => Stdio::from(fd.try_clone_to_owned()?),
            None => Stdio::inherit(),
        })
        .process_group(0);
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (prctl, fcntl, dup2) with values
    // prepared before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            pass_fds(&fds[..n])
        });
    }
    cmd.spawn()
}

/// In the child: puts each (source, target) descriptor at its target
/// number, without close-on-exec. Sources are first copied above every
/// target so that one placement cannot overwrite another's source.
pub fn pass_fds(fds: &[(RawFd, RawFd)]) -> std::io::Result<()> {
    use nix::libc;
    let mut high = [-1; MAX_FDS];
    for (i, (src, _)) in fds.iter().enumerate() {
        // SAFETY: plain fcntl on a descriptor the supervisor owns.
        let fd = unsafe { libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 64) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        high[i] = fd;
    }
    for (i, (_, target)) in fds.iter().enumerate() {
        // SAFETY: dup2 onto a number this child is free to use; the copy
        // at `target` does not have close-on-exec.
        if unsafe { libc::dup2(high[i], *target) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// nginx's arguments (it is started through `ssrd tether`).
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

/// A worker's arguments, starting from `bundle` (the store's current entry):
/// the worker's own options type, filled in from the tier's options, then
/// written out as the arguments it parses back from.
pub fn worker_args(config: &Config, bundle: &Stored) -> Vec<OsString> {
    let mut options = WorkerOptions::new(bundle.js.clone());
    let engine = &mut options.engine;
    engine.render_timeout_ms = config.render_timeout_ms;
    engine.heap_limit_mb = config.heap_limit_mb;
    engine.semi_space_mb = config.semi_space_mb;
    engine.max_html_mb = config.max_html_mb;
    engine.isolation = config.isolation;
    engine.request_budget_ms = config.request_budget_ms;
    engine.rss_limit_mb = config.recycle_rss_mb;
    if !config.v8_flags.trim().is_empty() {
        engine.v8_flags = config.v8_flags.clone();
    }
    options.bundle_id = Some(bundle.sha256.clone());
    options.port = None;
    options.listen_fd = Some(LISTEN_FD);
    options.slate_fd = Some(AUX_FD);
    options.events_fd = Some(EVENTS_FD);
    options.control = true;
    options.dev = config.dev;
    options.max_body_bytes = config.max_body_mb << 20;
    options.max_batch_jobs = config.max_batch_jobs;
    options.render_cache_bytes = config.render_cache_bytes;
    options.snapshot = config.snapshot.then(|| bundle.snapshot.clone());
    let mut args = vec![OsString::from("worker")];
    args.extend(options.to_args());
    args
}

/// Forwards a worker's event lines to the supervisor, on a thread.
pub fn forward_lines(
    slot: usize,
    pid: Pid,
    events: impl Read + Send + 'static,
    tx: UnboundedSender<Event>,
) {
    let _ = std::thread::Builder::new()
        .name(format!("ssrd-w{}-events", slot + 1))
        .spawn(move || {
            for line in BufReader::new(events).lines() {
                let Ok(line) = line else { break };
                if tx.send(Event::Line { slot, pid, line }).is_err() {
                    break;
                }
            }
        });
}

/// Makes a child's stdin pipe non-blocking: a control line to a worker that
/// does not read must never stall the supervisor.
pub fn nonblocking(stdin: std::process::ChildStdin) -> Option<std::process::ChildStdin> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(&stdin, FcntlArg::F_GETFL).ok()?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(&stdin, FcntlArg::F_SETFL(flags)).ok()?;
    Some(stdin)
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

    /// Whether the process brought this end on itself while running code:
    /// a fault signal (segfault, abort, V8's fatal-error trap) or an exit
    /// code the worker never uses for a planned exit. A SIGKILL (an
    /// operator, the OOM killer, a test) or SIGTERM is something done *to*
    /// the process, so it says nothing about the request it was rendering.
    pub fn self_inflicted(self) -> bool {
        use ssrd_worker::events::exit_code;
        match self {
            Exit::Signal(s) => matches!(
                s,
                Signal::SIGSEGV
                    | Signal::SIGBUS
                    | Signal::SIGILL
                    | Signal::SIGFPE
                    | Signal::SIGABRT
                    | Signal::SIGTRAP
                    | Signal::SIGSYS
            ),
            Exit::Code(c) => ![
                exit_code::OK,
                exit_code::BUNDLE,
                exit_code::HEAP_LIMIT,
                exit_code::MEMORY_LIMIT,
            ]
            .contains(&c),
            Exit::Unknown => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Stored {
        Stored {
            sha256: "ab".repeat(32),
            js: "/run/ssrd/bundles/ab.js".into(),
            snapshot: "/run/ssrd/bundles/ab.snap".into(),
            source: Default::default(),
            map: None,
        }
    }

    /// The arguments a tier gives its workers are the worker's own parser's:
    /// they parse back to the options they were made from, at the defaults
    /// and at every edge of the worker options `ssrd up` accepts.
    #[test]
    fn worker_arguments_parse_back_for_every_accepted_value() {
        let parse = |config: &Config| {
            let args = worker_args(config, &stored());
            assert_eq!(args[0], "worker");
            WorkerOptions::try_parse_from(&args[1..]).expect("the worker takes its arguments")
        };
        let o = parse(&Config::default());
        assert_eq!(o.listen_fd, Some(LISTEN_FD));
        assert_eq!(o.snapshot, Some(stored().snapshot));
        assert_eq!(o.bundle_id, Some(stored().sha256));
        assert!(o.control);
        for edge in [0, 1] {
            let pick = |r: std::ops::RangeInclusive<u64>| [*r.start(), *r.end()][edge];
            let config = Config {
                render_timeout_ms: pick(WorkerOptions::RENDER_TIMEOUT_MS.range),
                request_budget_ms: pick(WorkerOptions::REQUEST_BUDGET_MS.range),
                heap_limit_mb: pick(WorkerOptions::HEAP_LIMIT_MB.range),
                semi_space_mb: pick(WorkerOptions::SEMI_SPACE_MB.range),
                max_html_mb: pick(WorkerOptions::MAX_HTML_MB.range),
                max_body_mb: pick(1..=1024),
                max_batch_jobs: pick(WorkerOptions::MAX_BATCH_JOBS.range),
                render_cache_bytes: pick(WorkerOptions::RENDER_CACHE_BYTES.range),
                recycle_rss_mb: pick(WorkerOptions::RSS_LIMIT_MB.range),
                v8_flags: "--max-lazy".into(),
                snapshot: edge == 0,
                ..Config::default()
            };
            let o = parse(&config);
            assert_eq!(o.engine.render_timeout_ms, config.render_timeout_ms);
            assert_eq!(o.max_body_bytes, config.max_body_mb << 20);
            assert_eq!(o.engine.rss_limit_mb, config.recycle_rss_mb);
            assert_eq!(o.render_cache_bytes, config.render_cache_bytes);
            assert_eq!(o.engine.v8_flags, "--max-lazy");
            assert_eq!(o.snapshot.is_some(), config.snapshot);
        }
    }
}
