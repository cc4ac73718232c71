//! The worker ↔ supervisor contract: the event lines a worker writes and the
//! exit codes it ends with. Both ends use these types; nothing reads events
//! as untyped JSON.
//!
//! A worker always writes its ready line ([`Ready`]) once it serves. With
//! `--events` (on stdout) or `--events-fd FD` (on a pipe of its own, which
//! the supervisor uses: nothing bundle code can write reaches it) it then
//! reports every request ([`Request`]: per-job component,
//! duration and [`Outcome`], the wait before rendering, heap) and sends a
//! [`Heartbeat`] every second while idle and between jobs. The supervisor
//! turns these into metrics, recycling decisions and hung-worker detection.
//!
//! Emitting never blocks rendering: events go through a bounded channel to a
//! writer thread; if the supervisor stops reading and the pipe fills up,
//! events are dropped (and counted) rather than stalling a render. Under
//! load the writer sends request events in batches (at most [`COALESCE`]
//! late): one write, and one wake-up of the supervisor, per batch instead
//! of per request (bench/README.md, "Where a small request's CPU goes").

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::{Cause, Failure, JobOutcome};

/// Process exit codes of `ssrd worker`.
pub mod exit_code {
    /// Stopped on request (SIGTERM/SIGINT) after finishing in-flight work.
    pub const OK: i32 = 0;
    /// Could not start: bad flags, port taken, I/O error.
    pub const FAILURE: i32 = 1;
    /// Command-line usage error (clap).
    pub const USAGE: i32 = 2;
    /// The bundle failed to load, evaluate, honour the contract or warm up.
    pub const BUNDLE: i32 = 3;
    /// A render exhausted the JS heap. The job was answered; the process
    /// exited so that it can be replaced with a fresh one (EX_TEMPFAIL).
    pub const HEAP_LIMIT: i32 = 75;
    /// A request left the process's resident memory above its limit. The
    /// request was answered; the process exited to be replaced.
    pub const MEMORY_LIMIT: i32 = 76;
}

/// One line a worker writes on stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The worker serves from now on.
    Ready(Ready),
    /// One request was rendered.
    Request(Request),
    /// The render thread is alive.
    Heartbeat(Heartbeat),
    /// A request was refused unrendered because it is quarantined.
    Quarantined(Quarantined),
}

/// A request refused because it is quarantined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantined {
    /// X-Request-Id (from nginx) or one the worker made up.
    pub id: String,
    /// The request's hash (route and body).
    pub hash: String,
}

/// One line the supervisor writes to a worker's stdin (`--control`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "snake_case")]
pub enum Control {
    /// Refuse requests with this hash for this long: they crashed workers.
    Quarantine { hash: String, seconds: u64 },
    /// The caller of request `id` hung up: stop rendering it (hangups.rs).
    Cancel { id: String },
}

/// The ready line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    /// Always true: lets scripts test `ready` without knowing the tag.
    pub ready: bool,
    /// The port the worker serves on (the one bound when `--port 0`).
    pub port: u16,
    /// The worker's process id.
    pub pid: u32,
    /// Isolate plus bundle (or snapshot), ms.
    pub boot_ms: f64,
    /// Warm-up renders, ms.
    pub warmup_ms: f64,
    /// Where the isolate came from: "none", "built" or "loaded".
    pub snapshot: String,
    /// Resident memory once ready.
    pub rss_bytes: u64,
}

/// One rendered request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// X-Request-Id (from nginx) or one the worker made up.
    pub id: String,
    /// How long the request waited before its render started: since nginx
    /// received it when X-Request-Start is present, else since the worker
    /// read it.
    pub wait_ms: f64,
    /// Time spent rendering all jobs.
    pub render_ms: f64,
    /// One entry per job, in request order.
    pub jobs: Vec<JobEvent>,
    /// JS heap in use after the request.
    pub heap_used: u64,
    /// The heap limit.
    pub heap_limit: u64,
    /// The caller went away before the answer: the rest of its jobs were
    /// not rendered and no answer was sent.
    #[serde(default)]
    pub abandoned: bool,
    /// What the request is known by for quarantine (route and body hash,
    /// slate.rs): the supervisor counts the ones that keep running to
    /// their deadline.
    #[serde(default)]
    pub hash: String,
}

/// One job of a rendered request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// The component name (none when the job had no valid name).
    pub name: Option<String>,
    /// Milliseconds spent on the job.
    pub ms: f64,
    /// How it ended.
    pub outcome: Outcome,
}

/// The render thread is alive, with its memory figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// JS heap in use.
    pub heap_used: u64,
    /// The heap limit.
    pub heap_limit: u64,
    /// Resident memory of the process.
    pub rss: u64,
    /// Requests rendered so far.
    pub requests: u64,
    /// Events dropped because the supervisor did not read fast enough.
    pub dropped_events: u64,
    /// Batches of trace spans that did not reach the collector so far.
    #[serde(default)]
    pub trace_export_failures: u64,
    /// The render cache's figures so far (all zero when it is off).
    #[serde(default)]
    pub render_cache: CacheFigures,
}

/// The render cache's counters and gauges (render/cache.rs), in `/stats`
/// and every heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheFigures {
    /// Jobs answered from the cache, without entering V8.
    pub hits: u64,
    /// Jobs of cached components that had to render.
    pub misses: u64,
    /// Entries dropped to make room (`maxEntries` or the byte budget).
    pub evictions: u64,
    /// Entries dropped because their `ttlMs` ran out.
    pub expired: u64,
    /// Renders not kept because they were over an eighth of the budget.
    pub too_large: u64,
    /// Bytes held now (keys, HTML, meta and overhead).
    pub bytes: u64,
    /// Entries held now.
    pub entries: u64,
    /// The byte budget (0: the cache is off).
    pub budget: u64,
}

/// How one job ended, as counted in `/stats` and in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Rendered.
    Ok,
    /// The bundle does not know the component (status 404).
    NotFound,
    /// The job was malformed (status 400).
    BadRequest,
    /// The render ran past its deadline.
    Timeout,
    /// Any other failure: a throw, heap exhaustion, a host error.
    Error,
}

impl Outcome {
    /// Every outcome, in the order metrics and `/stats` list them.
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::NotFound,
        Outcome::BadRequest,
        Outcome::Error,
        Outcome::Timeout,
    ];

    /// The label in metrics, events and `/stats`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NotFound => "not_found",
            Outcome::BadRequest => "bad_request",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }

    /// How `outcome` is counted.
    pub fn of(outcome: &JobOutcome) -> Outcome {
        match outcome {
            Ok(_) => Outcome::Ok,
            Err(e) => match e.cause {
                Cause::Host(Failure::RenderTimeout) => Outcome::Timeout,
                Cause::Host(Failure::BadRequest) | Cause::Bundle { code: 400 } => {
                    Outcome::BadRequest
                }
                Cause::Bundle { code: 404 } => Outcome::NotFound,
                Cause::Host(_) | Cause::Bundle { .. } => Outcome::Error,
            },
        }
    }

    /// Its position in [`Outcome::ALL`], for counters kept in an array.
    pub fn index(self) -> usize {
        Outcome::ALL
            .iter()
            .position(|o| *o == self)
            .unwrap_or_default()
    }
}

/// How long the writer may hold a request event to send it with the ones
/// that follow. Metrics and recycling may lag by this much; the ready line,
/// heartbeats, quarantines and requests with a failed job are never held.
pub const COALESCE: Duration = Duration::from_millis(10);

/// Where the render thread sends events. Cheap to clone.
#[derive(Clone, Default)]
pub struct EventSink {
    /// The writer thread's inbox; `None` when events are off.
    tx: Option<SyncSender<ToWriter>>,
    /// Events dropped because the writer was behind.
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// Events off: `emit` does nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Events as JSON lines to `out` (stdout, or the pipe the supervisor
    /// handed over: `--events-fd`), written by a dedicated thread.
    pub fn to(out: Box<dyn Write + Send>) -> Self {
        let (tx, rx) = sync_channel::<ToWriter>(4096);
        std::thread::Builder::new()
            .name("ssrd-events".into())
            .spawn(move || write_lines(rx, out))
            .map(|_| EventSink {
                tx: Some(tx),
                dropped: Arc::default(),
            })
            .unwrap_or_default()
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues one event; never blocks.
    pub fn emit(&self, event: &Event) {
        let Some(tx) = &self.tx else { return };
        let Ok(mut line) = serde_json::to_string(event) else {
            return;
        };
        line.push('\n');
        match tx.try_send(ToWriter::Line(line, event.may_wait())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits (at most `within`) until every event emitted so far is
    /// written: a worker about to exit must not take its last request
    /// events with it.
    pub fn flush(&self, within: Duration) {
        let Some(tx) = &self.tx else { return };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        if tx.try_send(ToWriter::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(within);
        }
    }

    /// How many events were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Event {
    /// Whether the writer may hold this event back for [`COALESCE`]: only
    /// a request whose jobs all rendered (its counts are all it carries).
    fn may_wait(&self) -> bool {
        match self {
            Event::Request(r) => !r.abandoned && r.jobs.iter().all(|j| j.outcome == Outcome::Ok),
            _ => false,
        }
    }
}

/// What the writer thread is sent.
enum ToWriter {
    /// One event line, and whether it may wait for others ([`COALESCE`]).
    Line(String, bool),
    /// Write everything now, then say so.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The writer thread: one write per batch of lines. When the first line of
/// a batch may wait, it sleeps [`COALESCE`] (senders never wake it) and
/// then takes whatever else has arrived.
fn write_lines(rx: Receiver<ToWriter>, mut out: Box<dyn Write + Send>) {
    let mut batch = String::new();
    let mut flushed = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // Sleep at most once, and never while holding a line that may not
        // wait.
        let mut hold = true;
        while let Some(msg) = next.take() {
            match msg {
                ToWriter::Line(line, may_wait) => {
                    batch.push_str(&line);
                    if may_wait && hold {
                        std::thread::sleep(COALESCE);
                    }
                    hold = false;
                }
                ToWriter::Flush(done) => flushed.push(done),
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty()
            && out
                .write_all(batch.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
        {
            // The supervisor is gone; nobody is listening.
            return;
        }
        batch.clear();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobError, Rendered};

    #[test]
    fn events_round_trip_with_their_tag() {
        let e = Event::Request(Request {
            id: "r1".into(),
            wait_ms: 1.5,
            render_ms: 2.0,
            jobs: vec![JobEvent {
                name: Some("A".into()),
                ms: 2.0,
                outcome: Outcome::BadRequest,
            }],
            heap_used: 10,
            heap_limit: 20,
            abandoned: false,
            hash: "h".into(),
        });
        let line = serde_json::to_string(&e).unwrap();
        assert!(line.starts_with(r#"{"event":"request","#), "{line}");
        assert!(line.contains(r#""outcome":"bad_request""#), "{line}");
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), e);
        let ready = r#"{"event":"ready","ready":true,"port":1,"pid":2,"boot_ms":1.0,"warmup_ms":2.0,"snapshot":"none","rss_bytes":3}"#;
        assert!(matches!(
            serde_json::from_str::<Event>(ready).unwrap(),
            Event::Ready(Ready { port: 1, .. })
        ));
    }

    /// Records each write the writer thread makes.
    #[derive(Clone, Default)]
    struct Recorder(Arc<std::sync::Mutex<Vec<String>>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let text = String::from_utf8_lossy(buf).into_owned();
            self.0.lock().unwrap().push(text);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn request(id: &str, outcome: Outcome) -> Event {
        Event::Request(Request {
            id: id.into(),
            wait_ms: 0.0,
            render_ms: 0.1,
            jobs: vec![JobEvent {
                name: Some("A".into()),
                ms: 0.1,
                outcome,
            }],
            heap_used: 1,
            heap_limit: 2,
            abandoned: false,
            hash: "h".into(),
        })
    }

    #[test]
    fn request_events_go_out_in_batches_in_order_and_flush_waits_for_them() {
        let recorder = Recorder::default();
        let sink = EventSink::to(Box::new(recorder.clone()));
        for i in 0..20 {
            sink.emit(&request(&format!("r{i}"), Outcome::Ok));
        }
        sink.emit(&request("failed", Outcome::Timeout));
        sink.flush(Duration::from_secs(5));
        let writes = recorder.0.lock().unwrap().clone();
        let lines: Vec<Event> = writes
            .concat()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ids: Vec<String> = lines
            .iter()
            .map(|e| match e {
                Event::Request(r) => r.id.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        let mut expected: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
        expected.push("failed".into());
        assert_eq!(ids, expected);
        // 21 events emitted at once: written together, not one by one.
        assert!(writes.len() <= 2, "{} writes", writes.len());
    }

    #[test]
    fn only_requests_whose_jobs_all_rendered_may_wait() {
        assert!(request("a", Outcome::Ok).may_wait());
        assert!(!request("b", Outcome::Error).may_wait());
        let beat = Event::Heartbeat(Heartbeat {
            heap_used: 1,
            heap_limit: 2,
            rss: 3,
            requests: 4,
            dropped_events: 0,
            trace_export_failures: 0,
            render_cache: CacheFigures::default(),
        });
        assert!(!beat.may_wait());
    }

    #[test]
    fn outcomes_have_one_label_each() {
        let labels: Vec<&str> = Outcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(
            labels,
            ["ok", "not_found", "bad_request", "error", "timeout"]
        );
        for o in Outcome::ALL {
            assert_eq!(Outcome::ALL[o.index()], o);
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.label()));
        }
        let ok: JobOutcome = Ok(Rendered {
            html: String::new(),
            meta: None,
        });
        assert_eq!(Outcome::of(&ok), Outcome::Ok);
        let err = |e: JobError| Outcome::of(&Err(e));
        assert_eq!(err(Failure::RenderTimeout.error("t")), Outcome::Timeout);
        assert_eq!(err(Failure::BadRequest.error("b")), Outcome::BadRequest);
        assert_eq!(
            err(JobError::new(
                Cause::Bundle { code: 404 },
                "ReferenceError",
                "x"
            )),
            Outcome::NotFound
        );
        assert_eq!(err(Failure::HeapLimitExceeded.error("h")), Outcome::Error);
        assert_eq!(
            err(JobError::new(Cause::Bundle { code: 400 }, "E", "x")),
            Outcome::BadRequest
        );
        // A bundle's own error named like a host failure is still an error.
        assert_eq!(
            err(JobError::new(
                Cause::Bundle { code: 500 },
                "RenderTimeout",
                "x"
            )),
            Outcome::Error
        );
    }
}
