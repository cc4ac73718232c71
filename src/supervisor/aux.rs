//! The auxiliary processes, nginx and haproxy: one abstraction for both.
//! Each is started from its rendered config, restarted with backoff when it
//! dies while the tier runs, and signalled during shutdown. haproxy is only
//! started once its runtime API answers; after a restart every worker's
//! state is sent to it again (`resync`).

use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::json;
use ssrd_worker::log;

use super::haproxy_api::ServerState;
use super::restart::Backoff;
use super::shutdown::Phase;
use super::slot::SlotState;
use super::spawn;
use super::spawn::Exit;
use super::Supervisor;
use crate::config::Config;

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
    /// Which one.
    pub kind: AuxKind,
    /// The running process.
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
    pub fn new(kind: AuxKind) -> Self {
        Aux {
            kind,
            pid: None,
            child: None,
            started: Instant::now(),
            backoff: Backoff::default(),
            restart_at: None,
        }
    }

    /// Spawns the process from the rendered config.
    fn spawn(&mut self, config: &Config) -> Result<Pid, String> {
        let (program, args) = match self.kind {
            AuxKind::Nginx => (&config.nginx, spawn::nginx_args(config)),
            AuxKind::Haproxy => (&config.haproxy, spawn::haproxy_args(config)),
        };
        let child = spawn::spawn(program, &args, false, None)
            .map_err(|e| format!("spawning {}: {e}", program.display()))?;
        let pid = Pid::from_raw(child.id() as i32);
        self.pid = Some(pid);
        self.child = Some(child);
        self.started = Instant::now();
        Ok(pid)
    }

    /// Its process exited. While the tier runs, schedules a restart with
    /// backoff and returns the delay.
    fn exited(&mut self, running: bool) -> Option<Duration> {
        self.pid = None;
        self.child = None;
        running.then(|| {
            let delay = self.backoff.after_crash(self.started.elapsed());
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
    pub(super) async fn start_aux(&mut self, kind: AuxKind) -> Result<(), String> {
        if kind == AuxKind::Haproxy {
            let _ = std::fs::remove_file(self.config.haproxy_socket());
        }
        let config = self.config.clone();
        let pid = self.aux_mut(kind).spawn(&config)?;
        if kind == AuxKind::Nginx {
            return Ok(());
        }
        let deadline = Instant::now() + HAPROXY_START;
        while Instant::now() < deadline {
            if self.api.is_up().await {
                return Ok(());
            }
            if let Some(exit) = spawn::try_reap(pid) {
                self.haproxy.pid = None;
                return Err(format!("haproxy exited at start ({})", exit.describe()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "haproxy's runtime API did not come up within {HAPROXY_START:?}"
        ))
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
        }
    }

    /// Restarts whichever auxiliary process is due, then re-sends worker
    /// states to a restarted haproxy.
    pub(super) async fn restart_due_aux(&mut self, now: Instant) {
        for kind in [AuxKind::Haproxy, AuxKind::Nginx] {
            if self.aux_mut(kind).restart_at.is_none_or(|t| t > now) {
                continue;
            }
            self.aux_mut(kind).restart_at = None;
            match self.start_aux(kind).await {
                Ok(()) => self.resync |= kind == AuxKind::Haproxy,
                Err(e) => {
                    log::error(
                        "restart failed",
                        json!({"process": kind.name(), "error": e}),
                    );
                    let aux = self.aux_mut(kind);
                    aux.restart_at = Some(now + aux.backoff.after_crash(Duration::ZERO));
                }
            }
        }
        if self.resync && self.api.is_up().await {
            self.resync = false;
            for slot in &self.slots {
                let state = if slot.state == SlotState::Ready {
                    ServerState::Ready
                } else {
                    ServerState::Maint
                };
                if let Err(e) = self.api.set_state(&slot.name, state).await {
                    log::error("haproxy resync failed", json!({"error": e}));
                    self.resync = true;
                }
            }
        }
    }
}

fn log_exit(kind: AuxKind, exit: Exit, restart_in: Option<Duration>) {
    let name = kind.name();
    match restart_in {
        Some(delay) => log::error(
            &format!("{name} exited unexpectedly; restarting"),
            json!({"status": exit.describe(), "delay_ms": delay.as_millis() as u64}),
        ),
        None => log::info(
            &format!("{name} stopped"),
            json!({"status": exit.describe()}),
        ),
    }
}
