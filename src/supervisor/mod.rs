//! The supervisor: keeps nginx, haproxy and N workers running as one tier.
//!
//! A single event loop on the main thread, fed by a channel: signals
//! (signals.rs), worker stdout lines (ready line, request events,
//! heartbeats; spawn.rs) and a 100 ms tick. This file is only the loop and
//! the dispatch; each concern has its own file:
//!
//! - `slot.rs`: a worker slot's states and the decisions about it (what an
//!   exit means, which timer is due), pure and unit-tested;
//! - `workers.rs`: carrying those out: spawn, events, rotation, exits;
//! - `aux.rs`: nginx and haproxy, one abstraction for both;
//! - `rollout.rs`: reloads and recycling, one replacement at a time;
//! - `recycle.rs`: when a healthy worker is due for recycling;
//! - `restart.rs`: backoff for crash loops; `reason.rs`: restart reasons;
//! - `shutdown.rs`: the phases of a graceful stop;
//! - `telemetry.rs` + `metrics.rs`: events → Prometheus, `/metrics`;
//! - `spawn.rs`, `signals.rs`, `event.rs`: processes, signals, the channel;
//! - `haproxy_api.rs`: haproxy's runtime API; `announce.rs`: the ready line.

mod announce;
mod aux;
mod event;
pub mod haproxy_api;
pub mod metrics;
mod reason;
mod recycle;
mod restart;
mod rollout;
mod shutdown;
mod signals;
mod slot;
mod spawn;
mod telemetry;
mod workers;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use ssrd_worker::log;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::config::Config;
use aux::{Aux, AuxKind};
pub use event::Event;
use haproxy_api::HaproxyApi;
use metrics::Metrics;
use recycle::{Jitter, Policy};
use rollout::{Check, Rollout};
use shutdown::Phase;
pub use signals::forward as forward_signals;
use slot::Slot;
pub use spawn::nginx_args;

/// How often the supervisor looks at timers and draining workers.
const TICK: Duration = Duration::from_millis(100);

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
    listeners: Vec<TcpListener>,
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
    /// haproxy restarted: re-send every worker's state.
    resync: bool,
}

impl Supervisor {
    pub fn new(
        config: Config,
        exe: PathBuf,
        listeners: Vec<TcpListener>,
        tx: UnboundedSender<Event>,
        metrics: Arc<Metrics>,
    ) -> Self {
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
            api: HaproxyApi::new(config.haproxy_socket()),
            config,
            exe,
            tx,
            metrics,
            policy,
            jitter: Jitter::from_clock(),
            slots,
            listeners,
            nginx: Aux::new(AuxKind::Nginx),
            haproxy: Aux::new(AuxKind::Haproxy),
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
        if let Err(e) = self.start_aux(AuxKind::Haproxy).await {
            log::error("haproxy did not start", json!({"error": e}));
            self.kill_all();
            return 1;
        }
        for i in 0..self.slots.len() {
            self.spawn_worker(i);
        }
        if let Err(e) = self.start_aux(AuxKind::Nginx).await {
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

    async fn on_signal(&mut self, sig: i32) {
        match sig {
            SIGCHLD => self.reap().await,
            SIGHUP => self.start_reload(),
            SIGTERM | SIGINT => self.on_stop_signal(),
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
            self.poll_check();
            self.restart_due_aux(now).await;
            self.worker_timers(now).await;
            self.rollout_tick().await;
        } else {
            self.shutdown_tick();
        }
        telemetry::update_gauges(&self.metrics, &self.slots);
    }
}
