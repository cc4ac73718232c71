//! The render thread: owns the `Engine` and renders one request at a time.
//!
//! HTTP connections are served on other threads; every request that needs
//! rendering is sent here through a channel and answered through a oneshot.
//! One thread, one isolate, one request at a time: even if several
//! connections arrive at once, their renders never interleave, which is the
//! promise made to bundle authors (module-level globals and singletons are
//! safe). Requests whose caller has gone away are skipped, not rendered.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::boot::{self, ms, Boot, BootConfig};
use crate::config::Isolation;
use crate::error::{Error, ErrorKind, Result};
use crate::events::{self, Event, EventSink, JobEvent, Outcome};
use crate::job::Failure;
use crate::js_runtime::{Engine, HeapStats};
use crate::procfs;
use crate::protocol::{Job, JobResult};
use crate::slate::Slate;
use crate::watchdog::Canceller;

/// Why the render thread stopped taking work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retire {
    /// The isolate came near (or past) its heap limit: the process must be
    /// replaced.
    HeapLimit,
    /// The process's resident memory passed its limit.
    Rss,
}

impl Retire {
    /// The exit code the process ends with.
    pub fn exit_code(self) -> i32 {
        match self {
            Retire::HeapLimit => crate::events::exit_code::HEAP_LIMIT,
            Retire::Rss => crate::events::exit_code::MEMORY_LIMIT,
        }
    }
}

/// Counters and gauges the HTTP side reports at `/stats`.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Requests rendered (batches and single renders).
    pub requests: u64,
    /// Jobs rendered, by outcome (indexed by `Outcome::index`).
    pub jobs: [u64; Outcome::ALL.len()],
    /// V8 heap after the last request.
    pub heap: HeapStats,
    /// True while a request is being rendered.
    pub busy: bool,
    /// The request id being rendered now, if any (operators, tests).
    pub current: Option<String>,
    /// Requests whose caller went away before the answer.
    pub abandoned: u64,
}

impl Stats {
    /// Jobs that ended with `outcome`.
    pub fn jobs(&self, outcome: Outcome) -> u64 {
        self.jobs[outcome.index()]
    }
}

/// How often the render thread reports it is alive (idle or between jobs).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Who asked, for logs, events and queue-time metrics.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// X-Request-Id (from nginx) or one the worker made up.
    pub request_id: String,
    /// When nginx received the request (X-Request-Start), Unix seconds.
    pub started_at: Option<f64>,
}

/// One request for the render thread.
struct Request {
    /// The jobs, in order.
    jobs: Vec<Job>,
    /// Who asked.
    origin: Origin,
    /// Tags its renders, so only its own cancel can end them.
    tag: u64,
    /// Its hash (route and body), written on the slate while it renders.
    hash: String,
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
    /// Set by the render thread before it sends its last answer, so the
    /// HTTP side closes that connection instead of keeping it alive for
    /// another request this process will never render.
    retiring: Arc<AtomicBool>,
    /// Numbers requests: each one's tag.
    seq: Arc<AtomicU64>,
    /// Ends the renders of a request whose caller went away (the current
    /// engine's; replaced with it under `request` isolation).
    canceller: SharedCanceller,
    /// The most one request may render for.
    budget: Duration,
}

/// The current engine's canceller, shared with the HTTP side.
type SharedCanceller = Arc<Mutex<Option<Canceller>>>;

fn lock_canceller(c: &SharedCanceller) -> std::sync::MutexGuard<'_, Option<Canceller>> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// Cancels its request's renders when dropped before `done`: the HTTP
/// side's future is dropped when the caller disconnects, and the worker
/// must not keep rendering for nobody.
struct CancelOnDrop<'a> {
    /// The render thread's watchdog.
    canceller: &'a SharedCanceller,
    /// The request.
    tag: u64,
    /// Set once the answer is in.
    done: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if !self.done {
            if let Some(c) = lock_canceller(self.canceller).as_ref() {
                c.cancel(self.tag);
            }
        }
    }
}

impl RenderQueue {
    /// Renders `jobs` and waits for the answer, with a bound on the wait.
    /// If this future is dropped first (the caller went away), the render
    /// stops: the job in progress is ended at once, the rest never start.
    pub async fn render(&self, jobs: Vec<Job>, origin: Origin, hash: String) -> Result<Reply> {
        let (reply, answer) = oneshot::channel();
        let tag = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let request = Request {
            jobs,
            origin,
            tag,
            hash,
            reply,
            enqueued: Instant::now(),
        };
        let mut guard = CancelOnDrop {
            canceller: &self.canceller,
            tag,
            done: false,
        };
        // One request at a time: later ones wait their turn here, bounded
        // by the request ahead's budget and this one's.
        let wait = 2 * (self.budget + self.render_timeout) + Duration::from_secs(5);
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
            Ok(Ok(reply)) => {
                guard.done = true;
                Ok(reply)
            }
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

    /// True once the isolate has retired (or is answering its last request).
    pub fn retiring(&self) -> bool {
        self.retiring.load(Ordering::SeqCst)
    }
}

/// Limits the render loop applies to each request.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// The most one request may render for, all its jobs together.
    pub budget: Duration,
    /// Retire after a request that left RSS above this; 0 = never.
    pub rss_limit: u64,
    /// Whether requests share one isolate or get a fresh one each.
    pub isolation: Isolation,
}

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
    let (tx, rx) = mpsc::channel::<Request>(64);
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
            lock(&thread_stats).heap = engine.heap_stats();
            let mut loop_ = RenderLoop {
                stats: &thread_stats,
                events,
                render_timeout,
                budget,
                slate,
                rss_limit: limits.rss_limit,
                fresh: (limits.isolation == Isolation::Request).then_some(recipe),
                canceller: thread_canceller,
                last_heartbeat: Instant::now(),
                retiring: &thread_retiring,
                retire: Some(retire_tx),
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

/// The render thread's state while it serves (the engine is passed along:
/// under `request` isolation it is replaced after every request).
struct RenderLoop<'a> {
    /// Shared with `/stats`.
    stats: &'a Mutex<Stats>,
    /// Per-request events and heartbeats for the supervisor.
    events: EventSink,
    /// Per-job deadline.
    render_timeout: Duration,
    /// The most one request may render for, all its jobs together.
    budget: Duration,
    /// Names the request in flight, for the supervisor if this process dies.
    slate: Slate,
    /// Retire after a request that left RSS above this; 0 = never.
    rss_limit: u64,
    /// Under `request` isolation: how to start the fresh engine each
    /// request gets.
    fresh: Option<boot::Recipe>,
    /// Shared with the HTTP side; follows the engine.
    canceller: SharedCanceller,
    /// When the last heartbeat went out.
    last_heartbeat: Instant,
    /// Shared with the HTTP side (`RenderQueue::retiring`).
    retiring: &'a AtomicBool,
    /// Fires once when the isolate must be retired; taken when it does.
    retire: Option<oneshot::Sender<Retire>>,
}

impl RenderLoop<'_> {
    /// Serves requests until the queue closes or the isolate must retire.
    fn serve(&mut self, mut rx: mpsc::Receiver<Request>, mut engine: Engine) {
        loop {
            let next = engine.block_on(async { tokio::time::timeout(HEARTBEAT, rx.recv()).await });
            let request = match next {
                Ok(Some(request)) => request,
                Ok(None) => return,
                Err(_idle) => {
                    self.heartbeat(&mut engine);
                    continue;
                }
            };
            if request.reply.is_closed() {
                continue;
            }
            self.handle(&mut engine, request);
            if self.retire.is_none() {
                return;
            }
            if let Some(recipe) = &self.fresh {
                // Request isolation: the next request gets a fresh isolate.
                // Isolates on one thread must go in the reverse order they
                // came, so the old one goes first.
                drop(engine);
                engine = match recipe.start() {
                    Ok(engine) => engine,
                    Err(e) => {
                        crate::log::error(
                            "cannot start a fresh isolate; retiring",
                            serde_json::json!({"error": e.to_string()}),
                        );
                        self.retiring.store(true, Ordering::SeqCst);
                        if let Some(tx) = self.retire.take() {
                            let _ = tx.send(Retire::HeapLimit);
                        }
                        return;
                    }
                };
                *lock_canceller(&self.canceller) = Some(engine.canceller());
            }
        }
    }

    fn handle(&mut self, engine: &mut Engine, request: Request) {
        let picked = Instant::now();
        let queue_ms = ms(picked.duration_since(request.enqueued));
        let wait_ms = request
            .origin
            .started_at
            .map(|t| (unix_now() - t).max(0.0) * 1000.0)
            .unwrap_or(queue_ms);
        {
            let mut s = lock(self.stats);
            s.busy = true;
            s.current = Some(request.origin.request_id.clone());
        }
        self.slate.mark(&request.hash, &request.origin.request_id);
        engine.set_request_tag(request.tag);
        let deadline = picked + self.budget;
        let mut results = Vec::with_capacity(request.jobs.len());
        let mut abandoned = false;
        for job in request.jobs {
            if request.reply.is_closed() {
                // The caller went away: render nothing more for it.
                abandoned = true;
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            results.push(self.render_job(engine, job, left));
            if self.last_heartbeat.elapsed() >= HEARTBEAT {
                self.heartbeat(engine);
            }
        }
        abandoned |= request.reply.is_closed();
        self.slate.clear();
        let render_ms = ms(picked.elapsed());
        let heap = engine.heap_stats();
        {
            let mut s = lock(self.stats);
            s.requests += 1;
            for r in &results {
                s.jobs[Outcome::of(&r.outcome).index()] += 1;
            }
            s.heap = heap;
            s.busy = false;
            s.current = None;
            s.abandoned += u64::from(abandoned);
        }
        if self.events.enabled() {
            self.events.emit(&Event::Request(events::Request {
                id: request.origin.request_id,
                wait_ms,
                render_ms,
                jobs: results
                    .iter()
                    .map(|r| JobEvent {
                        name: r.name.clone(),
                        ms: r.duration_ms,
                        outcome: Outcome::of(&r.outcome),
                    })
                    .collect(),
                heap_used: heap.used as u64,
                heap_limit: heap.limit as u64,
                abandoned,
                hash: request.hash,
            }));
        }
        // Retire before answering: by the time the caller (haproxy, with
        // one request per worker) can send the next request, the HTTP side
        // has stopped accepting and closes this connection, so that request
        // waits in the listen backlog for the replacement process instead of
        // reaching this one and being answered 503.
        let retire = if engine.heap_exhausted() || engine.heap_over_limit() {
            Some(Retire::HeapLimit)
        } else if engine.memory_exceeded()
            || (self.rss_limit > 0 && procfs::rss_bytes() > self.rss_limit)
        {
            Some(Retire::Rss)
        } else {
            None
        };
        if let Some(why) = retire {
            self.retiring.store(true, Ordering::SeqCst);
            if let Some(tx) = self.retire.take() {
                let _ = tx.send(why);
            }
        }
        if !abandoned {
            let _ = request.reply.send(Reply {
                results,
                queue_ms,
                render_ms,
            });
        }
    }

    /// Renders one job with what is `left` of its request's budget.
    fn render_job(&mut self, engine: &mut Engine, job: Job, left: Duration) -> JobResult {
        let started = Instant::now();
        let (name, outcome) = match job.spec {
            Err(e) => (None, Err(e)),
            Ok(spec) if engine.heap_exhausted() => (
                Some(spec.name),
                Err(Failure::HeapLimitExceeded.error(
                    "not rendered: an earlier job in this batch exhausted the worker's JS heap",
                )),
            ),
            Ok(spec) if left.is_zero() => (
                Some(spec.name),
                Err(Failure::RenderTimeout.error(format!(
                    "not rendered: earlier jobs used up the request's {} ms render budget",
                    self.budget.as_millis()
                ))),
            ),
            Ok(spec) => {
                let outcome = engine.render(
                    &spec.name,
                    spec.props.get(),
                    spec.metadata.as_deref().map(|m| m.get()),
                    self.render_timeout.min(left),
                );
                (Some(spec.name), outcome)
            }
        };
        JobResult {
            token: job.token,
            name,
            outcome,
            duration_ms: ms(started.elapsed()),
            markup: None,
        }
    }

    /// Tells the supervisor the render thread is alive, with its memory.
    fn heartbeat(&mut self, engine: &mut Engine) {
        self.last_heartbeat = Instant::now();
        if !self.events.enabled() {
            return;
        }
        let heap = engine.heap_stats();
        let requests = lock(self.stats).requests;
        self.events.emit(&Event::Heartbeat(events::Heartbeat {
            heap_used: heap.used as u64,
            heap_limit: heap.limit as u64,
            rss: procfs::rss_bytes(),
            requests,
            dropped_events: self.events.dropped(),
        }));
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn lock(stats: &Mutex<Stats>) -> std::sync::MutexGuard<'_, Stats> {
    stats.lock().unwrap_or_else(|p| p.into_inner())
}
