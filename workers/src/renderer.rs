//! The render thread: owns the `Engine` and renders one request at a time.
//!
//! HTTP connections are served on other threads; every request that needs
//! rendering is sent here through a channel and answered through a oneshot.
//! One thread, one isolate, one request at a time: even if several
//! connections arrive at once, their renders never interleave, which is the
//! promise made to bundle authors (module-level globals and singletons are
//! safe). Requests whose caller has gone away are skipped, not rendered.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, ErrorKind, Result};
use crate::js_runtime::{Bundle, Engine, EngineOptions, HeapStats};
use crate::protocol::{Job, JobError, JobResult};
use crate::snapshot;

/// What the render thread needs to start.
#[derive(Debug, Clone)]
pub struct RendererConfig {
    /// The bundle to evaluate.
    pub bundle: PathBuf,
    /// Snapshot cache file: used if current, else built and written.
    pub snapshot: Option<PathBuf>,
    /// V8 heap limit for the isolate, bytes.
    pub heap_limit_bytes: usize,
    /// Per-job deadline enforced by the watchdog.
    pub render_timeout: Duration,
    /// How many times each of the bundle's warm-up jobs is rendered.
    pub warmup_rounds: u32,
}

/// How the worker booted, for its ready line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Boot {
    /// From process start of the render thread to the isolate holding the bundle.
    pub boot_ms: f64,
    /// Time spent rendering warm-up jobs.
    pub warmup_ms: f64,
    /// "loaded", "built" or "none".
    pub snapshot: &'static str,
}

/// Why the render thread stopped taking work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retire {
    /// The isolate came near its heap limit: the process must be replaced.
    HeapLimit,
}

/// Counters and gauges the HTTP side reports at `/stats`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    /// Requests rendered (batches and single renders).
    pub requests: u64,
    /// Jobs rendered, by outcome.
    pub jobs_ok: u64,
    pub jobs_not_found: u64,
    pub jobs_error: u64,
    pub jobs_timeout: u64,
    /// V8 heap after the last request.
    pub heap: HeapStats,
    /// True while a request is being rendered.
    pub busy: bool,
}

/// One request for the render thread.
struct Request {
    /// The jobs, in order.
    jobs: Vec<Job>,
    /// Where the answer goes; closed if the caller gave up.
    reply: oneshot::Sender<Reply>,
    /// When the HTTP side handed the request over, for queue time.
    enqueued: Instant,
}

/// The render thread's answer.
#[derive(Debug)]
pub struct Reply {
    /// One result per job, in request order.
    pub results: Vec<JobResult>,
    /// Time between hand-over and the render thread picking the request up.
    pub queue_ms: f64,
    /// Time spent rendering all jobs.
    pub render_ms: f64,
}

/// The HTTP side's handle on the render thread.
#[derive(Clone)]
pub struct RenderQueue {
    /// Requests to render; closed when the render thread retires.
    tx: mpsc::Sender<Request>,
    /// Shared with the render thread.
    stats: Arc<Mutex<Stats>>,
    /// Per-job deadline, to bound how long a caller waits for an answer.
    render_timeout: Duration,
}

impl RenderQueue {
    /// Renders `jobs` and waits for the answer, with a bound on the wait.
    pub async fn render(&self, jobs: Vec<Job>) -> Result<Reply> {
        let (reply, answer) = oneshot::channel();
        let n = jobs.len().max(1) as u32;
        let request = Request {
            jobs,
            reply,
            enqueued: Instant::now(),
        };
        // One request at a time: later ones wait their turn here, bounded.
        let wait = self.render_timeout * n.saturating_add(1) + Duration::from_secs(5);
        match tokio::time::timeout(wait, self.tx.send(request)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "this worker is retiring and takes no more work; retry on another",
                ))
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "timed out waiting for the render thread to take the request",
                ))
            }
        }
        match tokio::time::timeout(wait, answer).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(Error::new(
                ErrorKind::Unavailable,
                "the render thread stopped before answering",
            )),
            Err(_) => Err(Error::new(
                ErrorKind::Unavailable,
                "timed out waiting for the render thread's answer",
            )),
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn render_timeout(&self) -> Duration {
        self.render_timeout
    }
}

/// Starts the render thread and waits until the bundle is loaded and warm.
/// Returns the queue, how boot went, and a receiver that fires if the thread
/// retires the isolate (the process should then exit and be replaced).
pub fn start(config: RendererConfig) -> Result<(RenderQueue, Boot, oneshot::Receiver<Retire>)> {
    let (tx, rx) = mpsc::channel::<Request>(64);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Boot>>();
    let (retire_tx, retire_rx) = oneshot::channel();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let thread_stats = Arc::clone(&stats);
    let render_timeout = config.render_timeout;
    std::thread::Builder::new()
        .name("ssrd-render".into())
        .spawn(move || {
            let started = Instant::now();
            let (mut engine, mut boot) = match boot(&config) {
                Ok(ok) => ok,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            boot.boot_ms = ms(started.elapsed());
            let warm = Instant::now();
            if let Err(e) = warm_up(&mut engine, &config) {
                let _ = ready_tx.send(Err(e));
                return;
            }
            boot.warmup_ms = ms(warm.elapsed());
            update_heap(&mut engine, &thread_stats);
            let _ = ready_tx.send(Ok(boot));
            if let Some(reason) = serve(engine, rx, &thread_stats, render_timeout) {
                let _ = retire_tx.send(reason);
            }
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
        },
        boot,
        retire_rx,
    ))
}

fn boot(config: &RendererConfig) -> Result<(Engine, Boot)> {
    let bundle = Bundle::load(&config.bundle)?;
    let (snapshot, origin) = match &config.snapshot {
        Some(path) => {
            let (blob, origin) = snapshot::load_or_build(path, &bundle)?;
            (
                Some(blob),
                match origin {
                    snapshot::Origin::Loaded => "loaded",
                    snapshot::Origin::Built => "built",
                },
            )
        }
        None => (None, "none"),
    };
    let engine = Engine::new(
        &bundle,
        EngineOptions {
            heap_limit_bytes: config.heap_limit_bytes,
            snapshot,
        },
    )?;
    Ok((
        engine,
        Boot {
            boot_ms: 0.0,
            warmup_ms: 0.0,
            snapshot: origin,
        },
    ))
}

/// Renders the bundle's warm-up jobs so V8 has compiled and optimised the
/// hot paths before the first real request. A bundle whose own warm-up jobs
/// fail is broken: the worker refuses to become ready.
fn warm_up(engine: &mut Engine, config: &RendererConfig) -> Result<()> {
    let jobs = engine.warmup_jobs()?;
    for _ in 0..config.warmup_rounds {
        for (name, props) in &jobs {
            if let Err(e) = engine.render(name, props, None, config.render_timeout) {
                return Err(Error::bundle(format!(
                    "warm-up render of {name:?} failed: {}: {}",
                    e.name,
                    e.message_text()
                )));
            }
        }
    }
    Ok(())
}

/// The render loop. Returns why it stopped, if it retired the isolate.
fn serve(
    mut engine: Engine,
    mut rx: mpsc::Receiver<Request>,
    stats: &Mutex<Stats>,
    render_timeout: Duration,
) -> Option<Retire> {
    while let Some(request) = rx.blocking_recv() {
        if request.reply.is_closed() {
            continue;
        }
        let picked = Instant::now();
        set_busy(stats, true);
        let results: Vec<JobResult> = request
            .jobs
            .into_iter()
            .map(|job| render_job(&mut engine, job, render_timeout))
            .collect();
        let render_ms = ms(picked.elapsed());
        record(stats, &results);
        update_heap(&mut engine, stats);
        set_busy(stats, false);
        let _ = request.reply.send(Reply {
            results,
            queue_ms: ms(picked.duration_since(request.enqueued)),
            render_ms,
        });
        if engine.heap_exhausted() {
            return Some(Retire::HeapLimit);
        }
    }
    None
}

fn render_job(engine: &mut Engine, job: Job, render_timeout: Duration) -> JobResult {
    let started = Instant::now();
    let (name, outcome) = match job.spec {
        Err(e) => (None, Err(e)),
        Ok(spec) if engine.heap_exhausted() => (
            Some(spec.name),
            Err(JobError::host(
                500,
                "HeapLimitExceeded",
                "not rendered: an earlier job in this batch exhausted the worker's JS heap",
            )),
        ),
        Ok(spec) => {
            let outcome = engine.render(
                &spec.name,
                spec.props.get(),
                spec.metadata.as_deref().map(|m| m.get()),
                render_timeout,
            );
            (Some(spec.name), outcome)
        }
    };
    JobResult {
        token: job.token,
        name,
        outcome,
        duration_ms: ms(started.elapsed()),
    }
}

fn lock(stats: &Mutex<Stats>) -> std::sync::MutexGuard<'_, Stats> {
    stats.lock().unwrap_or_else(|p| p.into_inner())
}

fn set_busy(stats: &Mutex<Stats>, busy: bool) {
    lock(stats).busy = busy;
}

fn record(stats: &Mutex<Stats>, results: &[JobResult]) {
    let mut s = lock(stats);
    s.requests += 1;
    for r in results {
        match &r.outcome {
            Ok(_) => s.jobs_ok += 1,
            Err(e) if e.status == 404 => s.jobs_not_found += 1,
            Err(e) if e.name == "RenderTimeout" => s.jobs_timeout += 1,
            Err(_) => s.jobs_error += 1,
        }
    }
}

fn update_heap(engine: &mut Engine, stats: &Mutex<Stats>) {
    let heap = engine.heap_stats();
    lock(stats).heap = heap;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
