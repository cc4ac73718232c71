//! The supervisor: keeps nginx, haproxy and N workers running as one tier.
//!
//! It is a single event loop on the main thread, fed by a channel: signals
//! (signals.rs), worker stdout lines (ready line, request events,
//! heartbeats; spawn.rs) and a 100 ms tick. Each worker slot is a small
//! state machine:
//!
//! ```text
//!  Waiting ──spawn──▶ Starting ──ready line──▶ Ready ──recycle/reload──▶ Draining
//!     ▲                  │                       │                          │ idle
//!     └── backoff ◀── crash / hung / no ready ◀──┘               Stopping ◀─┘
//!                                                                   │ exited
//!                                                   spawn at once ◀─┘
//! ```
//!
//! Whatever the state, a worker that dies is set MAINT in haproxy before
//! anything else happens, so no queued request is sent to a dead port.

use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::{json, Value};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use ssrd_worker::log;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::config::Config;
use crate::haproxy_api::{HaproxyApi, ServerState};
use crate::metrics::Metrics;
use crate::recycle::{Jitter, Policy, Reason};
use crate::reload::{self, Rollout};
use crate::restart::Backoff;
use crate::spawn;
use crate::templates::server_name;

/// How often the supervisor looks at timers and draining workers.
const TICK: Duration = Duration::from_millis(100);
/// A worker that has not printed its ready line by then is killed.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// A reload's bundle check that takes longer is killed and fails.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a slot whose worker exited on its heap limit stays in rotation
/// while its replacement starts (connections wait in the accept queue).
const RESPAWN_GRACE: Duration = Duration::from_secs(3);

/// Prints a line on stdout, ignoring a closed stdout (`ssrd up | head -1`
/// must not take the tier down).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// What the event loop reacts to.
#[derive(Debug)]
pub enum Event {
    /// A signal arrived (SIGCHLD, SIGHUP, SIGTERM, SIGINT).
    Signal(i32),
    /// A line a worker wrote to stdout.
    Line { slot: usize, pid: Pid, line: String },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SlotState {
    /// Spawned; waiting for its ready line.
    Starting { since: Instant },
    /// READY in haproxy, taking requests.
    Ready,
    /// DRAIN in haproxy; waiting for it to be idle before stopping it.
    Draining { since: Instant },
    /// SIGTERM sent; waiting for it to exit.
    Stopping { since: Instant, respawn: bool },
    /// Dead; respawned when the backoff delay is over.
    Waiting { until: Instant },
    /// Dead and staying dead (shutdown).
    Stopped,
}

impl SlotState {
    fn label(self) -> &'static str {
        match self {
            SlotState::Starting { .. } => "starting",
            SlotState::Ready => "ready",
            SlotState::Draining { .. } | SlotState::Stopping { .. } => "draining",
            SlotState::Waiting { .. } | SlotState::Stopped => "dead",
        }
    }
}

/// One worker position: a port and a haproxy server name, with whichever
/// process currently fills it.
struct Slot {
    /// haproxy's server name (w1, w2, …).
    name: String,
    /// Where the slot is in its life cycle.
    state: SlotState,
    /// The current process, if any.
    pid: Option<Pid>,
    /// The std handle of that process (kept so its pipes live with it).
    child: Option<Child>,
    /// When the current process was spawned.
    started: Instant,
    /// The bundle generation the current process loaded.
    generation: u64,
    /// Requests the current process has served.
    requests: u64,
    /// Requests after which it is recycled (jittered), if recycling.
    quota: Option<u64>,
    /// Last event from the process: heartbeats prove the render thread lives.
    last_seen: Instant,
    /// Delay policy for crash restarts.
    backoff: Backoff,
    /// Set when the supervisor kills the process, to name the restart reason.
    kill_reason: Option<&'static str>,
    /// Set when the process is being replaced, to name the restart reason.
    replace_reason: Option<Reason>,
    /// Whether haproxy may send this slot new requests (READY).
    in_rotation: bool,
}

/// nginx or haproxy.
struct Aux {
    /// "nginx" or "haproxy", for logs.
    name: &'static str,
    /// The running process.
    pid: Option<Pid>,
    /// Its std handle.
    child: Option<Child>,
    /// When it was spawned.
    started: Instant,
    /// Crash restart delays.
    backoff: Backoff,
    /// When to start it again after a crash.
    restart_at: Option<Instant>,
}

impl Aux {
    fn new(name: &'static str) -> Self {
        Aux {
            name,
            pid: None,
            child: None,
            started: Instant::now(),
            backoff: Backoff::default(),
            restart_at: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Running,
    /// nginx is closing its listener and finishing in-flight requests.
    StopNginx {
        deadline: Instant,
    },
    /// Workers are finishing and exiting.
    StopWorkers {
        deadline: Instant,
    },
    /// haproxy is exiting.
    StopHaproxy {
        deadline: Instant,
    },
    Done(i32),
}

/// How a child ended.
#[derive(Debug, Clone, Copy)]
enum Exit {
    Code(i32),
    Signal(Signal),
    /// Reaped by someone else, or otherwise unknowable.
    Unknown,
}

impl Exit {
    fn describe(self) -> String {
        match self {
            Exit::Code(c) => format!("exit code {c}"),
            Exit::Signal(s) => format!("signal {s}"),
            Exit::Unknown => "unknown status".into(),
        }
    }
}

pub struct Supervisor {
    /// The tier's configuration.
    config: Config,
    /// This binary, to spawn workers and bundle checks.
    exe: PathBuf,
    /// For worker stdout forwarders.
    tx: UnboundedSender<Event>,
    /// haproxy's runtime API.
    api: HaproxyApi,
    /// Prometheus metrics.
    metrics: Arc<Metrics>,
    /// Recycling thresholds.
    policy: Policy,
    /// Jitter for recycling quotas.
    jitter: Jitter,
    /// The worker slots.
    slots: Vec<Slot>,
    /// Each slot's listening socket, bound once and inherited by every
    /// process that fills the slot (see spawn.rs).
    listeners: Vec<std::net::TcpListener>,
    nginx: Aux,
    haproxy: Aux,
    /// Workers waiting to be replaced, one at a time.
    rollout: Rollout,
    /// Bundle generation: bumped by each successful reload check.
    generation: u64,
    /// A reload's bundle check in progress, and when it started.
    check: Option<(Child, Instant)>,
    /// Another reload was asked for while one was being checked.
    reload_again: bool,
    /// Lifecycle of the whole tier.
    phase: Phase,
    /// The ready line has been printed.
    announced: bool,
    /// haproxy restarted: re-send every worker's state.
    resync: bool,
}

impl Supervisor {
    pub fn new(
        config: Config,
        exe: PathBuf,
        listeners: Vec<std::net::TcpListener>,
        tx: UnboundedSender<Event>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let now = Instant::now();
        let slots = (0..config.workers)
            .map(|i| Slot {
                name: server_name(i),
                state: SlotState::Waiting { until: now },
                pid: None,
                child: None,
                started: now,
                generation: 0,
                requests: 0,
                quota: None,
                last_seen: now,
                backoff: Backoff::default(),
                kill_reason: None,
                replace_reason: None,
                in_rotation: false,
            })
            .collect();
        let policy = Policy {
            requests: config.recycle_requests,
            heap_percent: config.recycle_heap_percent,
            rss_bytes: config.recycle_rss_mb << 20,
        };
        Supervisor {
            api: HaproxyApi::new(config.haproxy_socket()),
            config,
            exe,
            tx,
            metrics,
            policy,
            jitter: Jitter::seeded(),
            slots,
            listeners,
            nginx: Aux::new("nginx"),
            haproxy: Aux::new("haproxy"),
            rollout: Rollout::default(),
            generation: 0,
            check: None,
            reload_again: false,
            phase: Phase::Running,
            announced: false,
            resync: false,
        }
    }

    /// Starts haproxy, the workers and nginx, then runs the event loop until
    /// the tier has shut down. Returns the process exit code.
    pub async fn run(mut self, mut rx: UnboundedReceiver<Event>) -> i32 {
        if let Err(e) = self.start_haproxy().await {
            log::error("haproxy did not start", json!({"error": e}));
            self.kill_all();
            return 1;
        }
        for i in 0..self.slots.len() {
            self.spawn_worker(i);
        }
        if let Err(e) = self.start_aux_nginx() {
            log::error("nginx did not start", json!({"error": e}));
            self.kill_all();
            return 1;
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(Event::Signal(sig)) => self.on_signal(sig).await,
                    Some(Event::Line { slot, pid, line }) => self.on_line(slot, pid, &line).await,
                    None => break,
                },
                _ = tick.tick() => self.on_tick().await,
            }
            if let Phase::Done(code) = self.phase {
                return code;
            }
        }
        1
    }

    // ---- processes -----------------------------------------------------

    async fn start_haproxy(&mut self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.config.haproxy_socket());
        let child = spawn::spawn(
            &self.config.haproxy,
            &spawn::haproxy_args(&self.config),
            false,
            None,
        )
        .map_err(|e| format!("spawning {}: {e}", self.config.haproxy.display()))?;
        self.haproxy.pid = Some(Pid::from_raw(child.id() as i32));
        self.haproxy.child = Some(child);
        self.haproxy.started = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.api.is_up().await {
                return Ok(());
            }
            if let Some(pid) = self.haproxy.pid {
                if let Some(exit) = try_reap(pid) {
                    self.haproxy.pid = None;
                    return Err(format!("haproxy exited at start ({})", exit.describe()));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("haproxy's runtime API did not come up within 10 s".into())
    }

    fn start_aux_nginx(&mut self) -> Result<(), String> {
        let child = spawn::spawn(
            &self.config.nginx,
            &spawn::nginx_args(&self.config),
            false,
            None,
        )
        .map_err(|e| format!("spawning {}: {e}", self.config.nginx.display()))?;
        self.nginx.pid = Some(Pid::from_raw(child.id() as i32));
        self.nginx.child = Some(child);
        self.nginx.started = Instant::now();
        Ok(())
    }

    fn spawn_worker(&mut self, i: usize) {
        let now = Instant::now();
        let args = spawn::worker_args(&self.config);
        let quota = self.policy.request_quota(self.jitter.next());
        let listener = std::os::fd::AsRawFd::as_raw_fd(&self.listeners[i]);
        let slot = &mut self.slots[i];
        match spawn::spawn(&self.exe, &args, true, Some(listener)) {
            Ok(mut child) => {
                let pid = Pid::from_raw(child.id() as i32);
                if let Some(stdout) = child.stdout.take() {
                    spawn::forward_lines(i, pid, stdout, self.tx.clone());
                }
                slot.pid = Some(pid);
                slot.child = Some(child);
                slot.state = SlotState::Starting { since: now };
                slot.started = now;
                slot.generation = self.generation;
                slot.requests = 0;
                slot.quota = quota;
                slot.last_seen = now;
                log::info(
                    "worker starting",
                    json!({"worker": slot.name, "worker_pid": pid.as_raw(), "port": self.config.worker_port(i)}),
                );
            }
            Err(e) => {
                let delay = slot.backoff.after_crash(Duration::ZERO);
                slot.state = SlotState::Waiting { until: now + delay };
                log::error(
                    "cannot spawn worker",
                    json!({"worker": slot.name, "error": e.to_string()}),
                );
            }
        }
    }

    /// Reaps every child that has exited.
    async fn reap(&mut self) {
        for i in 0..self.slots.len() {
            if let Some(pid) = self.slots[i].pid {
                if let Some(exit) = try_reap(pid) {
                    self.on_worker_exit(i, exit).await;
                }
            }
        }
        for which in [AuxKind::Nginx, AuxKind::Haproxy] {
            if let Some(pid) = self.aux(which).pid {
                if let Some(exit) = try_reap(pid) {
                    self.on_aux_exit(which, exit);
                }
            }
        }
    }

    async fn on_worker_exit(&mut self, i: usize, exit: Exit) {
        let running = matches!(self.phase, Phase::Running);
        let slot = &mut self.slots[i];
        let was = slot.state;
        let pid = slot.pid.take();
        slot.child = None;
        let ran_for = slot.started.elapsed();
        let planned = matches!(was, SlotState::Stopping { respawn: true, .. });
        let reason: &'static str = if let Some(r) = slot.kill_reason.take() {
            r
        } else if planned {
            slot.replace_reason
                .take()
                .map(Reason::label)
                .unwrap_or("replace")
        } else {
            match exit {
                Exit::Code(ssrd_worker::exit_code::HEAP_LIMIT) => "heap_limit",
                Exit::Code(ssrd_worker::exit_code::BUNDLE) => "bundle",
                _ => "crash",
            }
        };
        let name = slot.name.clone();
        let mut fields = json!({
            "worker": name, "worker_pid": pid.map(Pid::as_raw), "status": exit.describe(), "reason": reason,
        });
        if running && reason == "heap_limit" {
            // It answered its last job and exited on purpose: replace it at
            // once. The slot stays in rotation; the few connections haproxy
            // sends it meanwhile wait in the slot's accept queue for the new
            // worker (at most RESPAWN_GRACE), so even when every worker
            // retires at the same moment no request is refused.
            self.metrics.restarts.with_label_values(&[reason]).inc();
            log::info(
                "worker exited on its heap limit; replacement starting",
                fields,
            );
            self.spawn_worker(i);
            return;
        }
        // Anything else: out of rotation first, so nothing queued is sent to
        // a slot with no process.
        let detected = Instant::now();
        let maint = self.take_out_of_rotation(i).await;
        fields["maint_ms"] = json!(detected.elapsed().as_secs_f64() * 1000.0);
        fields["maint_error"] = json!(maint.err());
        if !running {
            self.slots[i].state = SlotState::Stopped;
            log::info("worker stopped", fields);
            return;
        }
        self.metrics.restarts.with_label_values(&[reason]).inc();
        if planned {
            log::info("worker exited; starting its replacement", fields);
            self.spawn_worker(i);
            return;
        }
        if matches!(was, SlotState::Ready | SlotState::Draining { .. }) {
            // It had been serving: a poison request or an outside kill, not
            // a crash loop. Capacity matters more than caution here.
            self.slots[i].backoff.reset();
            log::warn("worker died; set MAINT, restarting now", fields);
            self.spawn_worker(i);
            return;
        }
        // It died before it ever got ready: back off, ever longer, so a
        // bundle that cannot start does not spin the CPU.
        log::warn("worker died; set MAINT, restarting after backoff", fields);
        if reason == "bundle" && self.rollout.current().map(|c| c.0) == Some(i) {
            log::error(
                "the new bundle does not start; reload aborted (workers not yet replaced keep the old bundle)",
                json!({"worker": name}),
            );
            self.rollout.abort();
        }
        let slot = &mut self.slots[i];
        let delay = slot.backoff.after_crash(ran_for);
        log::info(
            "worker restart scheduled",
            json!({"worker": name, "delay_ms": delay.as_millis() as u64}),
        );
        slot.state = SlotState::Waiting {
            until: Instant::now() + delay,
        };
    }

    /// MAINT in haproxy, then end the connections haproxy had already sent
    /// the slot: they wait in its accept queue, and nginx retries an ended
    /// one on a live worker at once instead of after the replacement starts.
    async fn take_out_of_rotation(&mut self, i: usize) -> Result<(), String> {
        let name = self.slots[i].name.clone();
        self.slots[i].in_rotation = false;
        let maint = self.api.set_state(&name, ServerState::Maint).await;
        let _ = self
            .api
            .command(&format!(
                "shutdown sessions server {}/{name}",
                crate::templates::BACKEND
            ))
            .await;
        maint
    }

    fn on_aux_exit(&mut self, which: AuxKind, exit: Exit) {
        let running = matches!(self.phase, Phase::Running);
        let aux = self.aux_mut(which);
        aux.pid = None;
        aux.child = None;
        let name = aux.name;
        if running {
            let delay = aux.backoff.after_crash(aux.started.elapsed());
            aux.restart_at = Some(Instant::now() + delay);
            log::error(
                &format!("{name} exited unexpectedly; restarting"),
                json!({"status": exit.describe(), "delay_ms": delay.as_millis() as u64}),
            );
        } else {
            log::info(
                &format!("{name} stopped"),
                json!({"status": exit.describe()}),
            );
        }
    }

    // ---- events --------------------------------------------------------

    async fn on_signal(&mut self, sig: i32) {
        match sig {
            SIGCHLD => self.reap().await,
            SIGHUP => self.start_reload(),
            SIGTERM | SIGINT => {
                if matches!(self.phase, Phase::Running) {
                    self.begin_shutdown();
                } else {
                    log::warn("second stop signal: killing everything", json!({}));
                    self.kill_all();
                    self.phase = Phase::Done(1);
                }
            }
            _ => {}
        }
    }

    async fn on_line(&mut self, i: usize, pid: Pid, line: &str) {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            log::warn(
                "unreadable line from a worker",
                json!({"worker": self.slots[i].name, "line": line}),
            );
            return;
        };
        if event["event"] == "request" {
            self.record_request(&event);
        }
        let slot = &mut self.slots[i];
        if slot.pid != Some(pid) {
            return; // the slot's previous process, finishing its last request
        }
        slot.last_seen = Instant::now();
        if event["ready"] == true {
            self.on_ready(i).await;
            return;
        }
        let worker = [slot.name.as_str()];
        match event["event"].as_str() {
            Some("request") => {
                slot.requests += 1;
                if let Some(heap) = event["heap_used"].as_u64() {
                    self.metrics
                        .heap
                        .with_label_values(&worker)
                        .set(heap as i64);
                }
            }
            Some("heartbeat") => {
                if let Some(heap) = event["heap_used"].as_u64() {
                    self.metrics
                        .heap
                        .with_label_values(&worker)
                        .set(heap as i64);
                }
                if let Some(rss) = event["rss"].as_u64() {
                    self.metrics.rss.with_label_values(&worker).set(rss as i64);
                }
            }
            _ => return,
        }
        if slot.state != SlotState::Ready || !matches!(self.phase, Phase::Running) {
            return;
        }
        let reason = self.policy.check(
            slot.requests,
            slot.quota,
            event["heap_used"].as_u64().unwrap_or(0),
            event["heap_limit"].as_u64().unwrap_or(0),
            event["rss"].as_u64().unwrap_or(0),
        );
        if let Some(reason) = reason {
            if self.rollout.enqueue(i, reason) {
                log::info(
                    "worker due for replacement",
                    json!({"worker": slot.name, "reason": reason.label(), "requests": slot.requests, "quota": slot.quota}),
                );
            }
        }
    }

    fn record_request(&self, event: &Value) {
        let m = &self.metrics;
        m.requests.inc();
        let jobs = event["jobs"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        m.batch_size.observe(jobs.len() as f64);
        for job in jobs {
            m.job(
                job["name"].as_str(),
                job["outcome"].as_str().unwrap_or("error"),
                job["ms"].as_f64().unwrap_or(0.0) / 1000.0,
            );
        }
        if let Some(wait) = event["wait_ms"]
            .as_f64()
            .or_else(|| event["queue_ms"].as_f64())
        {
            m.queue_wait.observe(wait / 1000.0);
        }
    }

    async fn on_ready(&mut self, i: usize) {
        if !matches!(self.slots[i].state, SlotState::Starting { .. }) {
            return;
        }
        let name = self.slots[i].name.clone();
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        match self.api.set_state(&name, ServerState::Ready).await {
            Ok(()) => {}
            Err(e) => {
                log::error(
                    "could not set worker READY; will retry",
                    json!({"worker": name, "error": e}),
                );
                self.resync = true;
            }
        }
        let slot = &mut self.slots[i];
        slot.state = SlotState::Ready;
        slot.in_rotation = true;
        log::info(
            "worker in rotation",
            json!({"worker": name, "worker_pid": slot.pid.map(Pid::as_raw), "boot_s": slot.started.elapsed().as_secs_f64()}),
        );
        self.rollout.finish(i);
        if !self.announced && self.slots.iter().all(|s| s.state == SlotState::Ready) {
            self.announced = true;
            self.announce();
        }
        if self.rollout.is_idle() && self.generation > 0 {
            let all_current = self.slots.iter().all(|s| s.generation == self.generation);
            if all_current {
                log::info(
                    "reload complete: every worker runs the new bundle",
                    json!({"generation": self.generation}),
                );
            }
        }
    }

    /// Prints where each part listens: one JSON line (for scripts and
    /// tests), then the same for humans.
    fn announce(&self) {
        let c = &self.config;
        let base = format!("http://{}:{}", c.host, c.port);
        let ports: Vec<u16> = (0..c.workers).map(|i| c.worker_port(i)).collect();
        let line = json!({
            "ready": true,
            "pid": std::process::id(),
            "batch": format!("{base}/batch"),
            "ping": format!("{base}/ping"),
            "health": format!("{base}/health"),
            "haproxy": format!("http://127.0.0.1:{}", c.haproxy_port),
            "stats": format!("http://127.0.0.1:{}/", c.stats_port),
            "metrics": format!("http://127.0.0.1:{}/metrics", c.metrics_port),
            "workers": ports,
            "run_dir": c.run_dir,
        });
        say!("{line}");
        say!(
            "ssrd is up with {} workers (bundle {})",
            c.workers,
            c.bundle.display()
        );
        say!("  render   POST {base}/batch  ·  POST {base}/render/{{name}}   (nginx)");
        say!("  ping     {base}/ping   health {base}/health");
        say!(
            "  haproxy  127.0.0.1:{}   stats http://127.0.0.1:{}/",
            c.haproxy_port,
            c.stats_port
        );
        say!(
            "  workers  127.0.0.1:{}..{}",
            ports[0],
            ports[ports.len() - 1]
        );
        say!("  metrics  http://127.0.0.1:{}/metrics", c.metrics_port);
        say!(
            "  reload   kill -HUP {}  (or: ssrd reload --run-dir {})",
            std::process::id(),
            c.run_dir.display()
        );
        say!("  stop     Ctrl-C or kill -TERM {}", std::process::id());
        log::info("tier ready", line);
    }

    // ---- the tick ------------------------------------------------------

    async fn on_tick(&mut self) {
        self.reap().await;
        match self.phase {
            Phase::Running => self.running_tick().await,
            _ => self.shutdown_tick(),
        }
        self.update_gauges();
    }

    async fn running_tick(&mut self) {
        let now = Instant::now();
        self.poll_check();
        for which in [AuxKind::Haproxy, AuxKind::Nginx] {
            if self.aux(which).restart_at.is_some_and(|t| t <= now) {
                self.aux_mut(which).restart_at = None;
                let started = match which {
                    AuxKind::Haproxy => self.start_haproxy().await.map(|()| self.resync = true),
                    AuxKind::Nginx => self.start_aux_nginx(),
                };
                if let Err(e) = started {
                    log::error(
                        "restart failed",
                        json!({"process": self.aux(which).name, "error": e}),
                    );
                    let aux = self.aux_mut(which);
                    aux.restart_at = Some(now + aux.backoff.after_crash(Duration::ZERO));
                }
            }
        }
        if self.resync && self.api.is_up().await {
            self.resync = false;
            for i in 0..self.slots.len() {
                let state = if self.slots[i].state == SlotState::Ready {
                    ServerState::Ready
                } else {
                    ServerState::Maint
                };
                if let Err(e) = self.api.set_state(&self.slots[i].name, state).await {
                    log::error("haproxy resync failed", json!({"error": e}));
                    self.resync = true;
                }
            }
        }
        // A slot kept in rotation for a heap-limit replacement that is slow
        // to come up leaves rotation after all.
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if slot.in_rotation
                && matches!(slot.state, SlotState::Starting { since } if now - since > RESPAWN_GRACE)
            {
                log::warn(
                    "replacement is slow to start; taking its slot out of rotation",
                    json!({"worker": slot.name}),
                );
                let _ = self.take_out_of_rotation(i).await;
            }
        }
        let heartbeat_timeout = self.config.heartbeat_timeout();
        let stop_timeout = self.config.shutdown_timeout() + Duration::from_secs(5);
        let mut draining = false;
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            match slot.state {
                SlotState::Waiting { until } if until <= now => self.spawn_worker(i),
                SlotState::Starting { since } if now - since > START_TIMEOUT => {
                    kill(
                        slot,
                        "start_timeout",
                        "worker did not get ready in time; killing it",
                    );
                }
                SlotState::Ready if now - slot.last_seen > heartbeat_timeout => {
                    kill(
                        slot,
                        "hung",
                        "worker stopped sending heartbeats; killing it",
                    );
                }
                SlotState::Stopping { since, .. } if now - since > stop_timeout => {
                    kill(
                        slot,
                        "stop_timeout",
                        "worker did not stop in time; killing it",
                    );
                }
                SlotState::Draining { .. } => draining = true,
                _ => {}
            }
        }
        if draining {
            self.stop_idle_draining().await;
        }
        if let Some((i, reason)) = self.rollout.start_next() {
            self.begin_replace(i, reason).await;
        }
    }

    /// Stops draining workers once haproxy has no session on them.
    async fn stop_idle_draining(&mut self) {
        let stats = self.api.stats().await.unwrap_or_default();
        let limit = self.config.shutdown_timeout();
        for slot in &mut self.slots {
            let SlotState::Draining { since } = slot.state else {
                continue;
            };
            let busy = stats.iter().any(|s| s.name == slot.name && s.scur > 0);
            if !busy || since.elapsed() > limit {
                if let Some(pid) = slot.pid {
                    spawn::signal(pid, Signal::SIGTERM);
                }
                slot.state = SlotState::Stopping {
                    since: Instant::now(),
                    respawn: true,
                };
            }
        }
    }

    async fn begin_replace(&mut self, i: usize, reason: Reason) {
        let current = self.generation;
        let slot = &self.slots[i];
        let stale = reason != Reason::Reload || slot.generation < current;
        if slot.state != SlotState::Ready || !stale {
            // Dead or starting slots get a fresh process anyway.
            self.rollout.finish(i);
            return;
        }
        let name = slot.name.clone();
        if let Err(e) = self.api.set_state(&name, ServerState::Drain).await {
            log::error(
                "could not drain worker; skipping its replacement",
                json!({"worker": name, "error": e}),
            );
            self.rollout.finish(i);
            return;
        }
        let slot = &mut self.slots[i];
        slot.in_rotation = false;
        slot.replace_reason = Some(reason);
        slot.state = SlotState::Draining {
            since: Instant::now(),
        };
        log::info(
            "replacing worker",
            json!({"worker": name, "reason": reason.label(), "requests": slot.requests}),
        );
    }

    fn start_reload(&mut self) {
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        if self.check.is_some() {
            self.reload_again = true;
            log::info(
                "reload requested during a bundle check; another will follow",
                json!({}),
            );
            return;
        }
        match reload::start_check(&self.exe, &self.config) {
            Ok(child) => {
                log::info(
                    "reload: checking the bundle",
                    json!({"bundle": self.config.bundle}),
                );
                self.check = Some((child, Instant::now()));
            }
            Err(e) => {
                self.metrics.reloads.with_label_values(&["failed"]).inc();
                log::error(
                    "reload: cannot run the bundle check",
                    json!({"error": e.to_string()}),
                );
            }
        }
    }

    fn poll_check(&mut self) {
        let Some((child, since)) = &mut self.check else {
            return;
        };
        let status = match child.try_wait() {
            Ok(Some(status)) => Some(status.success()),
            Ok(None) if since.elapsed() > CHECK_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                Some(false)
            }
            Ok(None) => None,
            Err(_) => Some(false),
        };
        let Some(ok) = status else { return };
        self.check = None;
        if ok {
            self.generation += 1;
            self.metrics.reloads.with_label_values(&["ok"]).inc();
            log::info(
                "reload: bundle is good; replacing workers one at a time",
                json!({"generation": self.generation, "workers": self.slots.len()}),
            );
            for i in 0..self.slots.len() {
                self.rollout.enqueue(i, Reason::Reload);
            }
        } else {
            self.metrics.reloads.with_label_values(&["failed"]).inc();
            log::error(
                "reload: the bundle failed its check (see the error above); workers keep the old bundle",
                json!({"bundle": self.config.bundle}),
            );
        }
        if std::mem::take(&mut self.reload_again) {
            self.start_reload();
        }
    }

    // ---- shutdown ------------------------------------------------------

    fn begin_shutdown(&mut self) {
        let deadline = Instant::now() + self.config.shutdown_timeout();
        log::info(
            "shutting down: nginx stops accepting, in-flight requests finish",
            json!({}),
        );
        self.rollout.abort();
        if let Some((mut child, _)) = self.check.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        match self.nginx.pid {
            Some(pid) => {
                // SIGQUIT: graceful; nginx closes its listener, finishes requests.
                spawn::signal(pid, Signal::SIGQUIT);
                self.phase = Phase::StopNginx { deadline };
            }
            None => self.stop_workers(),
        }
    }

    fn stop_workers(&mut self) {
        log::info("stopping workers", json!({}));
        for slot in &mut self.slots {
            match slot.pid {
                Some(pid) => {
                    spawn::signal(pid, Signal::SIGTERM);
                    slot.state = SlotState::Stopping {
                        since: Instant::now(),
                        respawn: false,
                    };
                }
                None => slot.state = SlotState::Stopped,
            }
        }
        self.phase = Phase::StopWorkers {
            deadline: Instant::now() + Duration::from_secs(10),
        };
    }

    fn shutdown_tick(&mut self) {
        let now = Instant::now();
        match self.phase {
            Phase::StopNginx { deadline } => {
                if self.nginx.pid.is_none() {
                    self.stop_workers();
                } else if now > deadline {
                    log::warn("nginx did not finish in time; killing it", json!({}));
                    if let Some(pid) = self.nginx.pid {
                        spawn::signal(pid, Signal::SIGKILL);
                    }
                }
            }
            Phase::StopWorkers { deadline } => {
                let alive: Vec<Pid> = self.slots.iter().filter_map(|s| s.pid).collect();
                if alive.is_empty() || now > deadline {
                    for pid in alive {
                        spawn::signal(pid, Signal::SIGKILL);
                    }
                    if let Some(pid) = self.haproxy.pid {
                        spawn::signal(pid, Signal::SIGTERM);
                    }
                    self.phase = Phase::StopHaproxy {
                        deadline: now + Duration::from_secs(5),
                    };
                }
            }
            Phase::StopHaproxy { deadline } => {
                if self.haproxy.pid.is_none() {
                    log::info("ssrd stopped", json!({}));
                    self.phase = Phase::Done(0);
                } else if now > deadline {
                    self.kill_all();
                    self.phase = Phase::Done(1);
                }
            }
            Phase::Running | Phase::Done(_) => {}
        }
    }

    fn kill_all(&mut self) {
        let pids = self
            .slots
            .iter()
            .filter_map(|s| s.pid)
            .chain(self.nginx.pid)
            .chain(self.haproxy.pid);
        for pid in pids {
            spawn::signal(pid, Signal::SIGKILL);
        }
    }

    // ---- helpers -------------------------------------------------------

    fn update_gauges(&self) {
        for state in ["starting", "ready", "draining", "dead"] {
            let n = self
                .slots
                .iter()
                .filter(|s| s.state.label() == state)
                .count();
            self.metrics
                .workers
                .with_label_values(&[state])
                .set(n as i64);
        }
    }

    fn aux(&self, which: AuxKind) -> &Aux {
        match which {
            AuxKind::Nginx => &self.nginx,
            AuxKind::Haproxy => &self.haproxy,
        }
    }

    fn aux_mut(&mut self, which: AuxKind) -> &mut Aux {
        match which {
            AuxKind::Nginx => &mut self.nginx,
            AuxKind::Haproxy => &mut self.haproxy,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum AuxKind {
    Nginx,
    Haproxy,
}

fn kill(slot: &mut Slot, reason: &'static str, msg: &str) {
    if let Some(pid) = slot.pid {
        log::warn(
            msg,
            json!({"worker": slot.name, "worker_pid": pid.as_raw(), "reason": reason}),
        );
        slot.kill_reason = Some(reason);
        spawn::signal(pid, Signal::SIGKILL);
    }
}

/// Reaps `pid` if it has exited, without blocking.
fn try_reap(pid: Pid) -> Option<Exit> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(Exit::Code(code)),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(Exit::Signal(sig)),
        Ok(_) => None,
        Err(nix::errno::Errno::ECHILD) => Some(Exit::Unknown),
        Err(_) => None,
    }
}
