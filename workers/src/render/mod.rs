//! The render thread: owns the `Engine` and renders one request at a time.
//!
//! HTTP connections are served on other threads; every request that needs
//! rendering is sent here through a channel and answered through a oneshot.
//! One thread, one isolate, one request at a time: even if several
//! connections arrive at once, their renders never interleave, which is the
//! promise made to bundle authors (module-level globals and singletons are
//! safe).
//!
//! - `request.rs`: what the thread is asked and answers (a component and
//!   its props in, an outcome out: no tokens, markup or statuses);
//! - `queue.rs`: the HTTP side's handle (hand-over, bounded waits,
//!   cancel-on-drop when the caller goes away);
//! - `render_loop.rs`: the thread's loop (the request budget, skipped jobs,
//!   the engine swap under `request` isolation);
//! - `stats.rs`: the counters `/stats` shows;
//! - `reporter.rs`: request events and heartbeats for the supervisor;
//! - `retire.rs`: when the isolate stops taking work, and its exit code;
//! - this file: starting the thread and waiting for its boot.

mod cache;
mod queue;
mod render_loop;
mod reporter;
mod request;
mod retire;
mod stats;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::boot::{self, Boot, BootConfig};
use crate::config::Isolation;
use crate::error::{Error, ErrorKind, Result};
use crate::event_sink::EventSink;
use crate::slate::Slate;

pub use cache::Policy as CachePolicy;
pub use queue::{Origin, RenderQueue, Reply};
pub use request::{CacheUse, JobRequest, RenderOutcome, RenderRequest};
pub use retire::Retire;
pub use stats::Stats;

use queue::{lock_canceller, Request, SharedCanceller};
use render_loop::RenderLoop;
use reporter::Reporter;

/// Limits the render loop applies to each request.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// The most one request may render for, all its jobs together.
    pub budget: Duration,
    /// Retire after a request that left RSS above this; 0 = never.
    pub rss_limit: u64,
    /// Whether requests share one isolate or get a fresh one each.
    pub isolation: Isolation,
    /// The render cache's byte budget (0: off); it keeps only what the
    /// bundle's contract declares (`cache`).
    pub cache_bytes: u64,
}

/// Requests the HTTP side may hand over before `render` waits: haproxy
/// sends one at a time, so this only matters when the worker runs alone.
const QUEUE_DEPTH: usize = 64;

/// Starts the render thread and waits until the bundle is loaded and warm.
/// Returns the queue, how boot went, and a receiver that fires if the thread
/// retires the isolate (the process should then exit and be replaced).
pub fn start(
    config: BootConfig,
    limits: RequestLimits,
    slate: Slate,
    events: EventSink,
) -> Result<(RenderQueue, Boot, oneshot::Receiver<Retire>)> {
    let budget = limits.budget;
    let (tx, rx) = mpsc::channel::<Request>(QUEUE_DEPTH);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Boot>>();
    let canceller: SharedCanceller = Arc::default();
    let thread_canceller = Arc::clone(&canceller);
    let (retire_tx, retire_rx) = oneshot::channel();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let thread_stats = Arc::clone(&stats);
    let retiring = Arc::new(AtomicBool::new(false));
    let thread_retiring = Arc::clone(&retiring);
    let render_timeout = config.render_timeout;
    std::thread::Builder::new()
        .name("ssrd-render".into())
        .spawn(move || {
            let (mut engine, recipe) = match boot::boot_with_recipe(&config) {
                Ok((engine, boot, recipe)) => {
                    *lock_canceller(&thread_canceller) = Some(engine.canceller());
                    let _ = ready_tx.send(Ok(boot));
                    (engine, recipe)
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            stats::lock(&thread_stats).heap = engine.heap_stats();
            let cache = cache::RenderCache::new(
                usize::try_from(limits.cache_bytes).unwrap_or(usize::MAX),
                recipe.bundle_source(),
                engine.cache_policies(),
            );
            stats::lock(&thread_stats).cache = cache.figures();
            let mut loop_ = RenderLoop {
                stats: &thread_stats,
                reporter: Reporter::new(events),
                render_timeout,
                budget,
                slate,
                rss_limit: limits.rss_limit,
                fresh: (limits.isolation == Isolation::Request).then_some(recipe),
                canceller: thread_canceller,
                retiring: &thread_retiring,
                retire: Some(retire_tx),
                cache,
            };
            loop_.serve(rx, engine);
        })
        .map_err(|e| Error::io("spawning the render thread", e))?;
    let boot = ready_rx
        .recv()
        .map_err(|_| Error::new(ErrorKind::Internal, "the render thread died while starting"))??;
    Ok((
        RenderQueue {
            tx,
            stats,
            render_timeout,
            retiring,
            seq: Arc::default(),
            canceller,
            budget,
        },
        boot,
        retire_rx,
    ))
}
