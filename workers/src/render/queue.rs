//! The HTTP side's handle on the render thread: hands a request over,
//! waits (bounded) for its answer, and cancels its renders if the caller
//! goes away first.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::request::{JobRequest, RenderOutcome};
use super::stats::{self, Stats};
use crate::error::{Error, ErrorKind, Result};
use crate::watchdog::Canceller;

/// Who asked, for logs, events and queue-time metrics.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// X-Request-Id (from nginx) or one the worker made up.
    pub request_id: String,
    /// When nginx received the request (X-Request-Start), Unix seconds.
    pub started_at: Option<f64>,
    /// The request's trace (32 hex digits) when tracing is on: written on
    /// the slate, so the supervisor's lines about a crash name it too.
    pub trace_id: Option<String>,
}

/// One request for the render thread.
pub(super) struct Request {
    /// The jobs, in order.
    pub jobs: Vec<JobRequest>,
    /// Who asked.
    pub origin: Origin,
    /// Tags its renders, so only its own cancel can end them.
    pub tag: u64,
    /// Its hash (route and body), written on the slate while it renders.
    pub hash: String,
    /// Where the answer goes; closed if the caller gave up.
    pub reply: oneshot::Sender<Reply>,
    /// When the HTTP side handed the request over, for queue time.
    pub enqueued: Instant,
}

/// The render thread's answer.
#[derive(Debug)]
pub struct Reply {
    /// One outcome per job, in request order.
    pub results: Vec<RenderOutcome>,
    /// Time between hand-over and the render thread picking the request up.
    pub queue_ms: f64,
    /// Time from when nginx received the request (when it stamped it; else
    /// `queue_ms`) to the render thread picking it up: the whole queue.
    pub wait_ms: f64,
    /// Time spent rendering all jobs.
    pub render_ms: f64,
}

/// The current engine's canceller, shared by the HTTP side and the render
/// thread (which replaces it with the engine under `request` isolation).
pub(super) type SharedCanceller = Arc<Mutex<Option<Canceller>>>;

pub(super) fn lock_canceller(c: &SharedCanceller) -> MutexGuard<'_, Option<Canceller>> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// The HTTP side's handle on the render thread.
#[derive(Clone)]
pub struct RenderQueue {
    /// Requests to render; closed when the render thread retires.
    pub(super) tx: mpsc::Sender<Request>,
    /// Shared with the render thread.
    pub(super) stats: Arc<Mutex<Stats>>,
    /// Per-job deadline, to bound how long a caller waits for an answer.
    pub(super) render_timeout: Duration,
    /// Set by the render thread before it sends its last answer, so the
    /// HTTP side closes that connection instead of keeping it alive for
    /// another request this process will never render.
    pub(super) retiring: Arc<AtomicBool>,
    /// Numbers requests: each one's tag.
    pub(super) seq: Arc<AtomicU64>,
    /// Ends the renders of a request whose caller went away (the current
    /// engine's; replaced with it under `request` isolation).
    pub(super) canceller: SharedCanceller,
    /// The most one request may render for.
    pub(super) budget: Duration,
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

/// How long a request may wait to be taken, and then for its answer: one
/// request at a time, so it waits behind at most the request ahead (its
/// budget plus one job's overshoot) and then its own, with slack.
fn handover_wait(budget: Duration, render_timeout: Duration) -> Duration {
    2 * (budget + render_timeout) + Duration::from_secs(5)
}

impl RenderQueue {
    /// Renders `jobs` and waits for the answer, with a bound on the wait.
    /// If this future is dropped first (the caller went away), the render
    /// stops: the job in progress is ended at once, the rest never start.
    pub async fn render(
        &self,
        jobs: Vec<JobRequest>,
        origin: Origin,
        hash: String,
    ) -> Result<Reply> {
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
        let wait = handover_wait(self.budget, self.render_timeout);
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

    /// The counters as they are now.
    pub fn stats(&self) -> Stats {
        stats::lock(&self.stats).clone()
    }

    /// The per-job deadline (shown at `/stats`).
    pub fn render_timeout(&self) -> Duration {
        self.render_timeout
    }

    /// True once the isolate has retired (or is answering its last request).
    pub fn retiring(&self) -> bool {
        self.retiring.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_waits_at_most_for_the_one_ahead_and_its_own() {
        let budget = Duration::from_millis(5000);
        let timeout = Duration::from_millis(1000);
        let wait = handover_wait(budget, timeout);
        assert!(wait > 2 * budget, "longer than two full budgets: {wait:?}");
        assert_eq!(wait, Duration::from_secs(17));
    }

    #[tokio::test]
    async fn a_retired_render_thread_answers_unavailable_at_once() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let queue = RenderQueue {
            tx,
            stats: Arc::default(),
            render_timeout: Duration::from_millis(10),
            retiring: Arc::default(),
            seq: Arc::default(),
            canceller: Arc::default(),
            budget: Duration::from_millis(10),
        };
        let e = queue
            .render(Vec::new(), Origin::default(), String::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
    }
}
