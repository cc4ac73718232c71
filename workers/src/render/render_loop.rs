//! The render thread's loop: takes one request at a time from the queue,
//! renders its jobs within the request's budget, counts, reports, decides
//! whether the isolate retires, then answers. Requests whose caller has gone
//! away are skipped, not rendered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::cache::{Lookup, RenderCache};
use super::queue::{lock_canceller, Reply, Request, SharedCanceller};
use super::reporter::{Rendered, Reporter, HEARTBEAT};
use super::request::{CacheUse, JobRequest, RenderOutcome, RenderRequest};
use super::retire::{self, Readings, Retire};
use super::stats::{self, Stats};
use crate::boot::{self, ms};
use crate::events::Outcome;
use crate::job::{Failure, JobError, JobOutcome};
use crate::js_runtime::Engine;
use crate::procfs;
use crate::slate::Slate;

/// How long the render thread waits with nothing to do before it gives
/// memory back (`Engine::release_memory`, about 10 ms): once after boot
/// and once after each busy spell, so an idle worker holds what its
/// isolate needs, not what its last burst of renders left. Under steady
/// load it never runs; a request that arrives while it does waits for it.
const IDLE_RELEASE: Duration = Duration::from_millis(250);

/// The render thread's state while it serves (the engine is passed along:
/// under `request` isolation it is replaced after every request).
pub(super) struct RenderLoop<'a> {
    /// Shared with `/stats`.
    pub stats: &'a Mutex<Stats>,
    /// Per-request events and heartbeats for the supervisor.
    pub reporter: Reporter,
    /// Per-job deadline.
    pub render_timeout: Duration,
    /// The most one request may render for, all its jobs together.
    pub budget: Duration,
    /// Names the request in flight, for the supervisor if this process dies.
    pub slate: Slate,
    /// Retire after a request that left RSS above this; 0 = never.
    pub rss_limit: u64,
    /// Under `request` isolation: how to start the fresh engine each
    /// request gets.
    pub fresh: Option<boot::Recipe>,
    /// Shared with the HTTP side; follows the engine.
    pub canceller: SharedCanceller,
    /// Shared with the HTTP side (`RenderQueue::retiring`).
    pub retiring: &'a AtomicBool,
    /// Fires once when the isolate must be retired; taken when it does.
    pub retire: Option<oneshot::Sender<Retire>>,
    /// The components the bundle declared pure, rendered once per key
    /// (cache.rs); kept across engines under `request` isolation (same
    /// bundle), gone with the process.
    pub cache: RenderCache,
}

/// Why a job is not rendered at all, decided before it starts: an earlier
/// job exhausted the heap (rendering more would only fail again), or the
/// earlier jobs used the whole request budget.
fn skip_reason(heap_exhausted: bool, left: Duration, budget: Duration) -> Option<JobError> {
    if heap_exhausted {
        Some(
            Failure::HeapLimitExceeded
                .error("not rendered: an earlier job in this batch exhausted the worker's JS heap"),
        )
    } else if left.is_zero() {
        Some(Failure::RenderTimeout.error(format!(
            "not rendered: earlier jobs used up the request's {} ms render budget",
            budget.as_millis()
        )))
    } else {
        None
    }
}

impl RenderLoop<'_> {
    /// Serves requests until the queue closes or the isolate must retire.
    pub fn serve(&mut self, mut rx: mpsc::Receiver<Request>, mut engine: Engine) {
        // Whether memory was given back since the last request (or boot).
        let mut released = false;
        loop {
            let wait = if released { HEARTBEAT } else { IDLE_RELEASE };
            let next = engine.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
            let request = match next {
                Ok(Some(request)) => request,
                Ok(None) => return,
                Err(_idle) => {
                    if !released {
                        engine.release_memory();
                        released = true;
                    }
                    self.heartbeat(&mut engine);
                    continue;
                }
            };
            released = false;
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
                        self.retire_now(Retire::HeapLimit);
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
        stats::lock(self.stats).begin(&request.origin.request_id);
        self.slate.mark(
            &request.hash,
            &request.origin.request_id,
            request.origin.trace_id.as_deref(),
        );
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
            if self.reporter.heartbeat_due() {
                self.heartbeat(engine);
            }
        }
        abandoned |= request.reply.is_closed();
        self.slate.clear();
        let render_ms = ms(picked.elapsed());
        let heap = engine.heap_stats();
        let outcomes = results.iter().map(|r| Outcome::of(&r.outcome));
        {
            let mut stats = stats::lock(self.stats);
            stats.end(outcomes, heap, abandoned);
            stats.cache = self.cache.figures();
        }
        self.reporter.request(Rendered {
            id: request.origin.request_id,
            wait_ms,
            render_ms,
            results: &results,
            heap,
            abandoned,
            hash: request.hash,
        });
        // Retire before answering: by the time the caller (haproxy, with
        // one request per worker) can send the next request, the HTTP side
        // has stopped accepting and closes this connection, so that request
        // waits in the listen backlog for the replacement process instead of
        // reaching this one and being answered 503.
        let readings = Readings {
            heap_exhausted: engine.heap_exhausted(),
            heap_over_limit: engine.heap_over_limit(),
            memory_exceeded: engine.memory_exceeded(),
            rss: if self.rss_limit > 0 {
                procfs::rss_bytes()
            } else {
                0
            },
        };
        if let Some(why) = retire::decide(readings, self.rss_limit) {
            self.retire_now(why);
        }
        if !abandoned {
            let _ = request.reply.send(Reply {
                results,
                queue_ms,
                wait_ms,
                render_ms,
            });
        }
    }

    /// Stops taking work: the HTTP side closes connections from now on and
    /// the process exits with `why`'s code once the answer is out.
    fn retire_now(&mut self, why: Retire) {
        self.retiring.store(true, Ordering::SeqCst);
        if let Some(tx) = self.retire.take() {
            let _ = tx.send(why);
        }
    }

    /// Renders one job with what is `left` of its request's budget.
    fn render_job(
        &mut self,
        engine: &mut Engine,
        job: JobRequest,
        left: Duration,
    ) -> RenderOutcome {
        let started = Instant::now();
        let started_at = std::time::SystemTime::now();
        let (name, props, outcome, cache) = match job {
            Err(e) => (None, None, Err(e), None),
            Ok(request) => {
                let (outcome, cache) = self.render_cached(engine, &request, left, started);
                (Some(request.name), Some(request.props), outcome, cache)
            }
        };
        RenderOutcome {
            name,
            props,
            outcome,
            duration_ms: ms(started.elapsed()),
            started_at,
            cache,
        }
    }

    /// One job through the render cache: a hit is answered before
    /// anything else (it costs no V8 time, heap or budget); a miss renders
    /// and keeps a success, stamped with when the render started so a slow
    /// render does not outlive its ttl.
    fn render_cached(
        &mut self,
        engine: &mut Engine,
        request: &RenderRequest,
        left: Duration,
        started: Instant,
    ) -> (JobOutcome, Option<CacheUse>) {
        let metadata = request.metadata.as_deref().map(|m| m.get());
        let lookup = self
            .cache
            .lookup(&request.name, request.props.get(), metadata, started);
        let key = match lookup {
            Lookup::Hit(rendered) => return (Ok(rendered), Some(CacheUse::Hit)),
            Lookup::Miss(key) => Some(key),
            Lookup::Uncached => None,
        };
        let outcome = match skip_reason(engine.heap_exhausted(), left, self.budget) {
            Some(e) => Err(e),
            None => engine.render(
                &request.name,
                request.props.get(),
                metadata,
                self.render_timeout.min(left),
            ),
        };
        let Some(key) = key else {
            return (outcome, None);
        };
        if let Ok(rendered) = &outcome {
            self.cache.store(key, rendered, started);
        }
        (outcome, Some(CacheUse::Miss))
    }

    fn heartbeat(&mut self, engine: &mut Engine) {
        let requests = stats::lock(self.stats).requests;
        self.reporter
            .heartbeat(engine.heap_stats(), requests, self.cache.figures());
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_millis(5000);

    #[test]
    fn a_job_with_budget_left_and_a_healthy_heap_renders() {
        assert!(skip_reason(false, Duration::from_millis(1), BUDGET).is_none());
    }

    #[test]
    fn a_job_after_the_budget_ran_out_is_a_timeout_naming_the_budget() {
        let e = skip_reason(false, Duration::ZERO, BUDGET).unwrap();
        assert_eq!(e.name, "RenderTimeout");
        assert!(e.message_text().contains("5000 ms"), "{}", e.message);
    }

    #[test]
    fn a_job_after_heap_exhaustion_is_skipped_as_heap_limit_even_with_budget() {
        let e = skip_reason(true, BUDGET, BUDGET).unwrap();
        assert_eq!(e.name, "HeapLimitExceeded");
        let e = skip_reason(true, Duration::ZERO, BUDGET).unwrap();
        assert_eq!(
            e.name, "HeapLimitExceeded",
            "the heap is the cause to report"
        );
    }
}
