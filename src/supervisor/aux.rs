//! The auxiliary processes, nginx and haproxy: one abstraction for both.
//!
//! Each gets its listening socket from the supervisor (listeners.rs) as fd
//! 3, so while one restarts, connections wait in the socket's queue. nginx
//! runs under `ssrd tether` (tether.rs), which takes its worker processes
//! down with it whatever happens to the supervisor or to nginx's master.
//! haproxy gets a fresh runtime-API channel as fd 4 at every start, and a
//! config naming the workers currently in rotation, so a restarted haproxy
//! routes at once. A process that ran for a while and died is restarted at
//! once; one that keeps dying right after start is restarted with backoff.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::json;
use ssrd_worker::log::{self, LogEvent};

use super::haproxy_api::ServerState;
use super::restart::{Backoff, STABLE_AFTER};
use super::spawn::{self, ChildSpec, Exit, AUX_FD, LISTEN_FD};
use super::stop_phases::Phase;
use super::Supervisor;
use crate::error::{Result, UpError};

/// How long haproxy may take to answer on its runtime API after starting.
const HAPROXY_START: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuxKind {
    Nginx,
    Haproxy,
}

impl AuxKind {
    pub fn name(self) -> &'static str {
        match self {
            AuxKind::Nginx => "nginx",
            AuxKind::Haproxy => "haproxy",
        }
    }
}

/// nginx or haproxy, and whichever process currently runs it.
pub struct Aux {
    /// The running process (for nginx: its tether).
    pub pid: Option<Pid>,
    /// Its std handle (kept so it is not dropped early; never waited on).
    child: Option<Child>,
    /// When it was spawned, to tell a crash loop from a one-off.
    started: Instant,
    /// Crash restart delays.
    backoff: Backoff,
    /// When to start it again after a crash.
    pub restart_at: Option<Instant>,
}

impl Aux {
    pub fn new() -> Self {
        Aux {
            pid: None,
            child: None,
            started: Instant::now(),
            backoff: Backoff::default(),
            restart_at: None,
        }
    }

    /// Its process exited. While the tier runs, schedules a restart: at
    /// once after a long run, with backoff in a crash loop.
    fn exited(&mut self, running: bool) -> Option<Duration> {
        self.pid = None;
        self.child = None;
        running.then(|| {
            let ran = self.started.elapsed();
            let delay = if ran >= STABLE_AFTER {
                self.backoff.reset();
                Duration::ZERO
            } else {
                self.backoff.after_crash(ran)
            };
            self.restart_at = Some(Instant::now() + delay);
            delay
        })
    }

    /// Sends a signal to the process, if it runs.
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid {
            spawn::signal(pid, signal);
        }
    }

    /// Ends it now, with everything it started. nginx's tether turns
    /// SIGUSR2 into SIGKILL for every process group it started (a SIGKILL
    /// to the tether itself would orphan nginx's workers).
    pub fn kill(&self, kind: AuxKind) {
        self.signal(match kind {
            AuxKind::Nginx => Signal::SIGUSR2,
            AuxKind::Haproxy => Signal::SIGKILL,
        });
    }
}

impl Supervisor {
    fn aux_mut(&mut self, kind: AuxKind) -> &mut Aux {
        match kind {
            AuxKind::Nginx => &mut self.nginx,
            AuxKind::Haproxy => &mut self.haproxy,
        }
    }

    /// Starts nginx or haproxy; haproxy only counts as started once its
    /// runtime API answers.
    pub(super) async fn start_aux(&mut self, kind: AuxKind) -> Result<()> {
        self.spawn_aux(kind)?;
        match kind {
            AuxKind::Nginx => Ok(()),
            AuxKind::Haproxy => self.haproxy_up().await,
        }
    }

    /// Starts `kind` without waiting for it to serve.
    pub(super) fn spawn_aux(&mut self, kind: AuxKind) -> Result<()> {
        let child = match kind {
            AuxKind::Nginx => self.spawn_nginx()?,
            AuxKind::Haproxy => self.spawn_haproxy()?,
        };
        let pid = Pid::from_raw(child.id() as i32);
        let aux = self.aux_mut(kind);
        aux.pid = Some(pid);
        aux.child = Some(child);
        aux.started = Instant::now();
        Ok(())
    }

    /// Waits until the haproxy just spawned answers on its runtime API;
    /// an error if it exits first or stays silent past `HAPROXY_START`.
    pub(super) async fn haproxy_up(&mut self) -> Result<()> {
        let Some(pid) = self.haproxy.pid else {
            return Err(UpError::runtime("haproxy is not running"));
        };
        let deadline = Instant::now() + HAPROXY_START;
        while Instant::now() < deadline {
            if self.api.is_up().await {
                return Ok(());
            }
            if let Some(exit) = spawn::try_reap(pid) {
                self.haproxy.pid = None;
                return Err(UpError::runtime(format!(
                    "haproxy exited at start ({})",
                    exit.describe()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(UpError::runtime(format!(
            "haproxy's runtime API did not come up within {HAPROXY_START:?}"
        )))
    }

    fn spawn_nginx(&mut self) -> Result<Child> {
        let mut args = vec![
            "tether".into(),
            "--".into(),
            self.config.nginx.clone().into(),
        ];
        args.extend(spawn::nginx_args(&self.config));
        spawn::spawn(&ChildSpec {
            program: &self.exe,
            args,
            fds: vec![(self.listeners.public.as_raw_fd(), LISTEN_FD)],
            // nginx takes inherited listening sockets from this variable.
            env: vec![("NGINX", format!("{LISTEN_FD};"))],
            pipe_stdin: false,
            quiet_stdout: false,
            stderr: Some(self.nginx_log.fd()),
        })
        .map_err(|e| UpError::setup(format!("spawning nginx (through ssrd tether): {e}")))
    }

    fn spawn_haproxy(&mut self) -> Result<Child> {
        // The config names the workers in rotation now: a restarted haproxy
        // routes at once instead of starting with every worker in MAINT.
        let in_rotation: Vec<bool> = self.slots.iter().map(|s| s.in_rotation).collect();
        crate::configs::write_haproxy_config(&self.config, &in_rotation)?;
        let channel: OwnedFd = self
            .api
            .new_channel()
            .map_err(|e| UpError::setup(format!("creating haproxy's runtime API channel: {e}")))?;
        spawn::spawn(&ChildSpec {
            program: &self.config.haproxy,
            args: spawn::haproxy_args(&self.config),
            fds: vec![
                (self.listeners.haproxy.as_raw_fd(), LISTEN_FD),
                (channel.as_raw_fd(), AUX_FD),
            ],
            env: vec![],
            pipe_stdin: false,
            quiet_stdout: false,
            stderr: None,
        })
        .map_err(|e| UpError::setup(format!("spawning {}: {e}", self.config.haproxy.display())))
    }

    /// Reaps nginx and haproxy if they exited.
    pub(super) fn reap_aux(&mut self) {
        for kind in [AuxKind::Nginx, AuxKind::Haproxy] {
            let running = self.phase == Phase::Running;
            let aux = self.aux_mut(kind);
            let Some(exit) = aux.pid.and_then(spawn::try_reap) else {
                continue;
            };
            log_exit(kind, exit, aux.exited(running));
            if kind == AuxKind::Nginx && matches!(exit, Exit::Signal(_)) {
                // The tether itself was killed: nginx's master went with it
                // (parent-death signal), but its workers may not have.
                crate::leftovers::kill_groups(&self.config.run_dir, &["nginx.pid"]);
            }
        }
    }

    /// Restarts whichever auxiliary process is due.
    pub(super) async fn restart_due_aux(&mut self, now: Instant) {
        for kind in [AuxKind::Haproxy, AuxKind::Nginx] {
            if self.aux_mut(kind).restart_at.is_none_or(|t| t > now) {
                continue;
            }
            self.aux_mut(kind).restart_at = None;
            let started = Instant::now();
            match self.start_aux(kind).await {
                Ok(()) => log::emit(
                    LogEvent::AuxRestarted,
                    &format!("{} restarted", kind.name()),
                    json!({"process": kind.name(), "start_ms": started.elapsed().as_secs_f64() * 1000.0}),
                ),
                Err(e) => {
                    log::emit(
                        LogEvent::AuxRestartFailed,
                        "restart failed",
                        json!({"process": kind.name(), "error": e}),
                    );
                    let aux = self.aux_mut(kind);
                    aux.restart_at = Some(now + aux.backoff.after_crash(Duration::ZERO));
                }
            }
        }
        if self.resync && self.haproxy.pid.is_some() {
            self.resync_states().await;
        }
    }

    /// Sends every worker's state to haproxy again, after a command failed.
    async fn resync_states(&mut self) {
        self.resync = false;
        for slot in &self.slots {
            let state = if slot.in_rotation {
                ServerState::Ready
            } else {
                ServerState::Maint
            };
            if let Err(e) = self.api.set_state(&slot.name, state).await {
                log::emit(
                    LogEvent::HaproxyResyncFailed,
                    "haproxy resync failed",
                    json!({"error": e}),
                );
                self.resync = true;
                return;
            }
        }
    }
}

fn log_exit(kind: AuxKind, exit: Exit, restart_in: Option<Duration>) {
    let name = kind.name();
    match restart_in {
        Some(delay) => log::emit(
            LogEvent::AuxExited,
            &format!("{name} exited unexpectedly; restarting"),
            json!({"process": name, "status": exit.describe(), "delay_ms": delay.as_millis() as u64}),
        ),
        None => log::emit(
            LogEvent::AuxStopped,
            &format!("{name} stopped"),
            json!({"process": name, "status": exit.describe()}),
        ),
    }
}
