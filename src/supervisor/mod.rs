//! The supervisor: keeps nginx, haproxy and N workers running as one tier.
//!
//! A single event loop on the main thread, fed by a channel: signals
//! (signals.rs), the lines workers write on their event pipe, fd 5 (ready
//! line, request events, heartbeats; spawn.rs) and a 100 ms tick. This file is only the loop and
//! the dispatch; each concern has its own file:
//!
//! - `slot.rs`: a worker slot's states and the decisions about it (what an
//!   exit means, which timer is due), pure and unit-tested;
//! - `workers.rs`: carrying those out: spawn, events, rotation, exits;
//! - `aux.rs`: nginx and haproxy, one abstraction for both;
//! - `rollout.rs`: reloads and recycling, one replacement at a time;
//! - `listeners.rs`: every listening socket, owned here, inherited by all;
//! - `quarantine.rs`: requests that crash workers, refused for a while;
//! - `run_dir.rs`: recreates the run dir if it is deleted while running;
//! - `recycle.rs`: when a healthy worker is due for recycling;
//! - `restart.rs`: backoff for crash loops; `reason.rs`: restart reasons;
//! - `shutdown.rs`: draining, then the phases of a graceful stop
//!   (`stop_phases.rs` decides them, pure and unit-tested);
//! - `health.rs`: the tier's `/health` (rotation, draining, bundle);
//! - `hangups.rs`: callers that hung up (nginx's 499s), cancelled in workers;
//! - `telemetry.rs` + `metrics.rs`: events → Prometheus, `/metrics`;
//! - `spawn.rs`, `signals.rs`, `event.rs`: processes, signals, the channel;
//! - `haproxy_api.rs`: haproxy's runtime API; `announce.rs`: the ready line;
//! - `watch.rs`: dev mode's reload when the bundle file changes.

mod announce;
mod aux;
mod event;
pub mod hangups;
pub mod haproxy_api;
pub mod health;
pub mod listeners;
pub mod metrics;
pub mod nginx_log;
mod quarantine;
mod reason;
mod recycle;
mod restart;
mod rollout;
mod run_dir;
mod shutdown;
mod signals;
mod slot;
mod spawn;
mod stop_phases;
mod telemetry;
mod watch;
mod workers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use ssrd_worker::log::{self, LogEvent};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::bundle_store::BundleStore;
use crate::config::Config;
use crate::leftovers::RunLock;
use aux::{Aux, AuxKind};
pub use event::Event;
use haproxy_api::HaproxyApi;
use listeners::Listeners;
use metrics::Metrics;
use quarantine::Strikes;
use recycle::{Jitter, Policy};
use rollout::{Check, Rollout};
pub use signals::forward as forward_signals;
use slot::Slot;
pub use spawn::{nginx_args, pass_fds};
use stop_phases::Phase;
pub use watch::start as watch_bundle;

/// How often the supervisor looks at timers and draining workers.
const TICK: Duration = Duration::from_millis(100);

pub struct Supervisor {
    /// The tier's configuration.
    config: Config,
    /// This binary, to spawn workers and bundle checks.
    exe: PathBuf,
    /// For the forwarders of workers' event pipes (fd 5).
    tx: UnboundedSender<Event>,
    /// haproxy's runtime API.
    api: HaproxyApi,
    /// Prometheus metrics.
    metrics: Arc<Metrics>,
    /// What `/health` says; published after every event.
    health: Arc<health::Health>,
    /// Where nginx reports callers that hang up (its config names it).
    hangup: crate::templates::HangupTarget,
    /// A stop signal arrived: the tier drains (serving, /health 503) until
    /// then, and stops after.
    drain_until: Option<Instant>,
    /// Recycling thresholds.
    policy: Policy,
    /// Jitter for recycling quotas.
    jitter: Jitter,
    /// The worker slots.
    slots: Vec<Slot>,
    /// Every listening socket, bound once and inherited by every process
    /// that serves on it (listeners.rs).
    listeners: Listeners,
    /// The bundles the tier accepted; workers start from the current one.
    store: BundleStore,
    /// The run dir's lock, held for the supervisor's life.
    lock: RunLock,
    /// Requests that crashed workers, and those quarantined.
    strikes: Strikes,
    /// The nginx process.
    nginx: Aux,
    /// The haproxy process.
    haproxy: Aux,
    /// Workers waiting to be replaced, one at a time.
    rollout: Rollout,
    /// Bundle generation: bumped by each successful reload check.
    generation: u64,
    /// A reload's bundle check in progress.
    check: Option<Check>,
    /// Another reload was asked for while one was being checked.
    reload_again: bool,
    /// Lifecycle of the whole tier.
    phase: Phase,
    /// The ready line has been printed.
    announced: bool,
    /// `up`'s bundle check passed (its warm-up half runs while the workers
    /// start): the ready line waits for it.
    bundle_checked: bool,
    /// That check, until the event loop hands it to its waiting thread.
    bundle_check: Option<crate::bundle_check::Pending>,
    /// haproxy restarted: re-send every worker's state.
    resync: bool,
    /// nginx's stderr (and default access log), copied to the supervisor's.
    nginx_log: nginx_log::NginxLog,
    /// Dev mode's watch on the bundle file; `None` in production.
    _watch: Option<watch::BundleWatch>,
    /// Dev mode: the content of the last save reloaded (or refused), so
    /// the same bytes saved again do not reload or print their error twice.
    watched_sha: Option<String>,
}

/// What `ssrd up` prepared for the supervisor.
pub struct Parts {
    /// This binary, to spawn workers, tethers and bundle checks.
    pub exe: PathBuf,
    /// The tier's listening sockets.
    pub listeners: Listeners,
    /// The bundle store, with the checked bundle current.
    pub store: BundleStore,
    /// The run dir's lock.
    pub lock: RunLock,
    /// haproxy's runtime API (shared with the metrics server).
    pub api: HaproxyApi,
    /// For the forwarders of workers' event pipes (fd 5).
    pub tx: UnboundedSender<Event>,
    /// Prometheus metrics (shared with the metrics server).
    pub metrics: Arc<Metrics>,
    /// `/health` (shared with the metrics server).
    pub health: Arc<health::Health>,
    /// Where nginx reports callers that hang up (for rewriting its config).
    pub hangup: crate::templates::HangupTarget,
    /// nginx's stderr (and default access log), copied to the supervisor's.
    pub nginx_log: nginx_log::NginxLog,
    /// Dev mode's watch on the bundle file (see [`watch::start`]).
    pub watch: Option<watch::BundleWatch>,
    /// `up`'s bundle check, snapshot written, warm-up still running.
    pub bundle_check: Option<crate::bundle_check::Pending>,
}

impl Supervisor {
    pub fn new(config: Config, parts: Parts) -> Self {
        let now = Instant::now();
        let slots = (0..config.workers)
            .map(|i| Slot::new(crate::templates::server_name(i), now))
            .collect();
        let policy = Policy {
            requests: config.recycle_requests,
            heap_percent: config.recycle_heap_percent,
            rss_bytes: config.recycle_rss_mb << 20,
        };
        Supervisor {
            api: parts.api,
            config,
            exe: parts.exe,
            tx: parts.tx,
            metrics: parts.metrics,
            health: parts.health,
            hangup: parts.hangup,
            nginx_log: parts.nginx_log,
            _watch: parts.watch,
            watched_sha: None,
            drain_until: None,
            policy,
            jitter: Jitter::from_clock(),
            slots,
            listeners: parts.listeners,
            store: parts.store,
            lock: parts.lock,
            strikes: Strikes::default(),
            nginx: Aux::new(),
            haproxy: Aux::new(),
            rollout: Rollout::default(),
            generation: 0,
            check: None,
            reload_again: false,
            phase: Phase::Running,
            announced: false,
            bundle_checked: parts.bundle_check.is_none(),
            bundle_check: parts.bundle_check,
            resync: false,
        }
    }

    /// Starts haproxy, the workers and nginx, then runs the event loop until
    /// the tier has shut down. Returns the process exit code.
    pub async fn run(mut self, mut rx: UnboundedReceiver<Event>) -> i32 {
        // Every slot is in rotation while its first worker starts: the
        // listening sockets are the supervisor's, so requests that arrive
        // before a worker is ready wait in its accept queue (or haproxy's
        // queue) instead of failing because the tier is starting.
        for slot in &mut self.slots {
            slot.in_rotation = true;
            slot.first_start = true;
        }
        if let Some(check) = self.bundle_check.take() {
            let tx = self.tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send(Event::BundleChecked(check.finish()));
            });
        }
        // haproxy, the workers and nginx start together (`ssrd up` → /health
        // 200 is the slowest of them, not their sum): every listening socket
        // is the supervisor's, so nginx's first requests wait in haproxy's
        // accept queue, and the workers' ready lines wait in the channel
        // until the loop below runs, after haproxy's runtime API answered,
        // so none is put in rotation before haproxy is up.
        let failed = match self.spawn_aux(AuxKind::Haproxy) {
            Err(e) => Some((AuxKind::Haproxy, e)),
            Ok(()) => {
                for i in 0..self.slots.len() {
                    self.spawn_worker(i);
                }
                match self.spawn_aux(AuxKind::Nginx) {
                    Err(e) => Some((AuxKind::Nginx, e)),
                    Ok(()) => self.haproxy_up().await.err().map(|e| (AuxKind::Haproxy, e)),
                }
            }
        };
        if let Some((kind, e)) = failed {
            let (event, msg) = match kind {
                AuxKind::Haproxy => (LogEvent::HaproxyStartFailed, "haproxy did not start"),
                AuxKind::Nginx => (LogEvent::NginxStartFailed, "nginx did not start"),
            };
            log::emit(event, msg, json!({"error": e}));
            self.kill_all();
            return 1;
        }
        self.publish_bundle();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(Event::Signal(sig)) => self.on_signal(sig).await,
                    Some(Event::Line { slot, pid, line }) => self.on_line(slot, pid, &line).await,
                    Some(Event::HungUp(id)) => self.on_hung_up(id),
                    Some(Event::BundleChanged) => self.on_bundle_changed(),
                    Some(Event::BundleChecked(verdict)) => self.on_bundle_checked(verdict),
                    None => break,
                },
                _ = tick.tick() => self.on_tick().await,
            }
            self.publish_health();
            if let Phase::Done(code) = self.phase {
                return code;
            }
        }
        1
    }

    async fn on_signal(&mut self, sig: i32) {
        match sig {
            SIGCHLD => self.reap().await,
            SIGHUP => self.start_reload(),
            SIGTERM => self.on_stop_signal(true),
            SIGINT => self.on_stop_signal(false),
            _ => {}
        }
    }

    /// Reaps every child that has exited.
    async fn reap(&mut self) {
        self.reap_workers().await;
        self.reap_aux();
    }

    async fn on_tick(&mut self) {
        self.reap().await;
        if self.phase == Phase::Running {
            let now = Instant::now();
            self.keep_run_dir();
            self.poll_check();
            self.restart_due_aux(now).await;
            self.worker_timers(now).await;
            self.rollout_tick().await;
            self.drain_tick(now);
        } else {
            self.shutdown_tick();
        }
        telemetry::update_gauges(&self.metrics, &self.slots);
    }

    /// Tells `/health` how many workers are in rotation and ready (a slot
    /// kept in rotation while its worker starts does not count).
    fn publish_health(&self) {
        let in_rotation = self
            .slots
            .iter()
            .filter(|s| s.in_rotation && s.state == slot::SlotState::Ready)
            .count();
        self.health.set_rotation(in_rotation, self.slots.len());
    }

    /// `up`'s bundle check is done: the ready line may follow, or the tier
    /// stops with the check's message, as `up` does when the check fails
    /// before anything starts.
    fn on_bundle_checked(&mut self, verdict: crate::error::Result<()>) {
        match verdict {
            Ok(()) => {
                self.bundle_checked = true;
                self.announce_if_ready();
            }
            Err(e) => {
                log::emit(
                    LogEvent::BundleCheckFailed,
                    "the bundle failed its check; stopping",
                    json!({"error": e}),
                );
                self.kill_all();
                self.phase = Phase::Done(e.report());
            }
        }
    }

    /// Prints the ready line once every worker is in rotation and the
    /// bundle check passed.
    fn announce_if_ready(&mut self) {
        if !self.announced
            && self.bundle_checked
            && self.slots.iter().all(|s| s.state == slot::SlotState::Ready)
        {
            self.announced = true;
            announce::announce(&self.config);
        }
    }

    /// Tells `/health` and the metrics which bundle new workers start from.
    fn publish_bundle(&self) {
        let Some(current) = self.store.current() else {
            return;
        };
        let id = health::BundleId {
            sha256: current.sha256.clone(),
            loaded_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
        };
        self.metrics.set_bundle(&id);
        self.health.set_bundle(id);
    }
}
