//! What the render thread tells the supervisor: one event per request
//! (queue wait, render time, each job's outcome, the heap it left) and a
//! heartbeat at least once a second, idle or not, so a wedged render thread
//! shows as a missing heartbeat.

use std::time::{Duration, Instant};

use crate::event_sink::EventSink;
use crate::events::{self, CacheFigures, Event, JobEvent, Outcome};
use crate::js_runtime::HeapStats;
use crate::procfs;

use super::request::RenderOutcome;

/// How often the render thread reports it is alive (idle or between jobs).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The render thread's side of the event pipe.
pub struct Reporter {
    /// The pipe to the supervisor (disabled when the worker runs alone).
    events: EventSink,
    /// When the last heartbeat went out.
    last_heartbeat: Instant,
}

/// One rendered request, as the supervisor hears of it.
pub struct Rendered<'a> {
    /// X-Request-Id.
    pub id: String,
    /// Time since nginx received it until the render thread took it.
    pub wait_ms: f64,
    /// Time spent rendering all its jobs.
    pub render_ms: f64,
    /// Its jobs' results.
    pub results: &'a [RenderOutcome],
    /// The heap it left.
    pub heap: HeapStats,
    /// Its caller went away before the answer.
    pub abandoned: bool,
    /// Its hash (route and body), for quarantine.
    pub hash: String,
}

impl Reporter {
    pub fn new(events: EventSink) -> Reporter {
        Reporter {
            events,
            last_heartbeat: Instant::now(),
        }
    }

    /// Reports a rendered request.
    pub fn request(&self, r: Rendered<'_>) {
        if !self.events.enabled() {
            return;
        }
        self.events.emit(&Event::Request(events::Request {
            id: r.id,
            wait_ms: r.wait_ms,
            render_ms: r.render_ms,
            jobs: r
                .results
                .iter()
                .map(|j| JobEvent {
                    name: j.name.clone(),
                    ms: j.duration_ms,
                    outcome: Outcome::of(&j.outcome),
                })
                .collect(),
            heap_used: r.heap.used as u64,
            heap_limit: r.heap.limit as u64,
            abandoned: r.abandoned,
            hash: r.hash,
        }));
    }

    /// Whether a heartbeat is due (between the jobs of a long batch).
    pub fn heartbeat_due(&self) -> bool {
        self.last_heartbeat.elapsed() >= HEARTBEAT
    }

    /// Tells the supervisor the render thread is alive, with its memory,
    /// how many requests it has rendered and its render cache's figures.
    pub fn heartbeat(&mut self, heap: HeapStats, requests: u64, render_cache: CacheFigures) {
        self.last_heartbeat = Instant::now();
        if !self.events.enabled() {
            return;
        }
        self.events.emit(&Event::Heartbeat(events::Heartbeat {
            heap_used: heap.used as u64,
            heap_limit: heap.limit as u64,
            rss: procfs::rss_bytes(),
            requests,
            dropped_events: self.events.dropped(),
            trace_export_failures: crate::trace::export_failures(),
            render_cache,
        }));
    }
}
