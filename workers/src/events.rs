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
//! How they are written, never blocking a render and in batches under
//! load, is event_sink.rs.

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
