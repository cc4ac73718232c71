//! Structured logs: one JSON object per line on stderr.
//!
//! stdout is reserved for the worker's ready line (the supervisor reads it),
//! so everything else goes to stderr. Lines about a request carry its
//! `request_id` (from nginx's X-Request-Id when present).
//!
//! Every line is bounded: a field's value (text, or the JSON of anything
//! else) is cut to [`MAX_FIELD`] bytes, so a line is at most a few KiB
//! whatever a caller or a bundle put in it (docs/worker.md, "Logs"). Lines
//! that would repeat (the same failure of the same component) go through
//! [`Repeats`], which writes one and counts the rest.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The most bytes one field of a log line carries.
pub const MAX_FIELD: usize = 1024;

/// `value` within [`MAX_FIELD`] bytes.
fn bounded(value: Value) -> Value {
    match value {
        Value::String(s) if s.len() > MAX_FIELD => Value::String(crate::job::clip(&s, MAX_FIELD)),
        Value::Array(_) | Value::Object(_) => {
            let json = value.to_string();
            if json.len() > MAX_FIELD {
                Value::String(crate::job::clip(&json, MAX_FIELD))
            } else {
                value
            }
        }
        other => other,
    }
}

/// Writes one log line: `{"ts", "level", "msg", "pid", ...fields}`.
pub fn log(level: &str, msg: &str, fields: Value) {
    let mut line = Map::new();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    line.insert("ts".into(), Value::from((ts * 1000.0).round() / 1000.0));
    line.insert("level".into(), Value::from(level));
    line.insert("msg".into(), Value::from(msg));
    line.insert("pid".into(), Value::from(std::process::id()));
    if let Value::Object(extra) = fields {
        line.extend(extra.into_iter().map(|(k, v)| (k, bounded(v))));
    }
    let mut text = Value::Object(line).to_string();
    text.push('\n');
    // A closed stderr must not take the worker down.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// What a log line reports, as a stable name in its `event` field. Tests,
/// alerts and log pipelines key on `event`; `msg` is for people and its
/// words may change. docs/operations.md ("Log events") lists them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogEvent {
    // The supervisor's: the tier, nginx and haproxy, workers' lives, reloads.
    /// `ssrd up` checked its options and is starting nginx, haproxy and the workers.
    TierStarting,
    /// Every worker is in rotation and nginx accepts: the ready line.
    TierReady,
    /// The bundle's warm-up check, which runs while the tier starts, failed;
    /// the tier stops (exit 3, `error` says why).
    BundleCheckFailed,
    /// A process of an earlier `ssrd up` in this run dir was still running and was killed.
    LeftoverKilled,
    /// nginx or haproxy (`process`) was started again after it exited.
    AuxRestarted,
    /// Starting nginx or haproxy again failed; retried after a backoff.
    AuxRestartFailed,
    /// Sending every worker's state to a restarted haproxy failed; retried.
    HaproxyResyncFailed,
    /// nginx or haproxy exited while the tier runs; it is restarted.
    AuxExited,
    /// nginx or haproxy exited as part of a stop.
    AuxStopped,
    /// haproxy did not start; the tier stops.
    HaproxyStartFailed,
    /// nginx did not start; the tier stops.
    NginxStartFailed,
    /// nginx wrote faster than the supervisor's stderr took it; lines were dropped.
    NginxLogDropped,
    /// A worker crashed with this request in flight (one strike toward quarantine).
    CrashedInFlight,
    /// A request crashed workers often enough to be refused for a while.
    RequestQuarantined,
    /// A reload was asked for while another's bundle was being checked.
    ReloadQueued,
    /// A reload started: the new bundle is being checked in a throwaway worker.
    ReloadChecking,
    /// The bundle check could not run; nothing changes.
    ReloadUncheckable,
    /// The new bundle passed its check; workers are replaced one at a time.
    ReloadAccepted,
    /// The new bundle failed its check; workers keep the old one.
    ReloadRejected,
    /// A worker passed a recycling threshold (`reason`) and waits its turn to be replaced.
    WorkerDue,
    /// haproxy would not drain a worker, so it was not replaced this time.
    WorkerDrainFailed,
    /// A worker is drained and a new one starts in its slot (reload or recycling; `reason`).
    WorkerReplacing,
    /// The run dir disappeared under the running tier.
    RunDirDeleted,
    /// The run dir was recreated with everything the tier keeps in it.
    RunDirRecreated,
    /// The run dir could not be recreated; the tier stops.
    RunDirLost,
    /// SIGTERM: the tier drains (every request served, `/health` 503) before it stops.
    DrainStarted,
    /// A second stop signal ended the drain early.
    DrainCut,
    /// A stop signal during the stop: every process is killed.
    KillingAll,
    /// The graceful stop began: nginx stops accepting, accepted requests finish.
    StopStarted,
    /// The supervisor is about to exit (`code`).
    TierStopped,
    /// nginx outlived its stop deadline and was killed.
    NginxKilled,
    /// nginx is gone; the workers finish and exit.
    WorkersStopping,
    /// A worker could not be started: no event pipe.
    WorkerPipeFailed,
    /// A worker process was spawned (`worker`, `pid`).
    WorkerStarting,
    /// A worker process could not be spawned.
    WorkerSpawnFailed,
    /// A worker exited at its V8 heap limit; its replacement starts at once.
    WorkerHeapLimitExit,
    /// A worker died; a replacement starts in its place at once.
    WorkerDiedReplaced,
    /// A worker exited and its slot stays empty (the tier is stopping).
    WorkerStopped,
    /// A worker retired as planned; its replacement starts.
    WorkerExitedReplaced,
    /// A serving worker died: MAINT in haproxy, restarted at once.
    WorkerDiedRestartNow,
    /// A worker died soon after starting: MAINT in haproxy, restarted after a backoff.
    WorkerDiedBackoff,
    /// A reload's first replacement did not start; the rest keep the old bundle.
    ReloadAborted,
    /// When a worker that died will be started again (`delay_ms`).
    WorkerRestartScheduled,
    /// A worker wrote a line on its event pipe the supervisor cannot read.
    WorkerLineUnreadable,
    /// haproxy did not take a worker's READY state; retried.
    WorkerReadyFailed,
    /// A worker is ready and haproxy sends it requests.
    WorkerInRotation,
    /// Every worker runs the new bundle.
    ReloadComplete,
    /// Dev mode: the bundle file's content changed; a reload starts.
    BundleSaved,
    // The workers': written by the bundle's host code (workers/js/bundle_log.js)
    // or the worker itself.
    /// A line the bundle wrote with `console.*` (`text`; 200 lines or
    /// 64 KiB per job, then one note).
    BundleConsole,
    /// A promise the bundle rejected and nobody handled (`text`).
    BundleUnhandledRejection,
    /// A job failed (`request_id`, `component`, `error`, `message`,
    /// `stack`; `repeated` when lines of the same failure were held back).
    JobFailed,
    /// The bundle's source map could not be used (too large, unreadable,
    /// malformed; `bundle`, `map`, `problem`): stacks stay unmapped. Once
    /// per worker.
    SourceMapUnusable,
    /// A replacement was not ready in time; its slot leaves rotation until it is.
    WorkerSlowStart,
    /// A worker broke a promise (no heartbeat, slow stop, over a limit; `reason`) and was killed.
    WorkerKilled,
}

impl LogEvent {
    /// The level every line of this event is written at.
    pub fn level(self) -> &'static str {
        use LogEvent::*;
        match self {
            AuxRestartFailed
            | HaproxyResyncFailed
            | AuxExited
            | HaproxyStartFailed
            | NginxStartFailed
            | RequestQuarantined
            | ReloadUncheckable
            | ReloadRejected
            | WorkerDrainFailed
            | RunDirDeleted
            | RunDirLost
            | WorkerPipeFailed
            | WorkerSpawnFailed
            | ReloadAborted
            | BundleCheckFailed
            | WorkerReadyFailed
            | BundleUnhandledRejection => "error",
            LeftoverKilled | NginxLogDropped | CrashedInFlight | KillingAll | NginxKilled
            | WorkerHeapLimitExit | WorkerDiedReplaced | WorkerDiedRestartNow
            | WorkerDiedBackoff | WorkerLineUnreadable | WorkerSlowStart | WorkerKilled
            | JobFailed | SourceMapUnusable => "warn",
            // BundleConsole's level is the console method's (bundle_log.js).
            _ => "info",
        }
    }
}

/// Writes one line of `event` at its level: `{"ts", "level", "msg",
/// "event", "pid", ...fields}`.
pub fn emit(event: LogEvent, msg: &str, fields: Value) {
    let mut fields = match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    fields.insert(
        "event".into(),
        serde_json::to_value(event).unwrap_or(Value::Null),
    );
    log(event.level(), msg, Value::Object(fields));
}

pub fn info(msg: &str, fields: Value) {
    log("info", msg, fields);
}

pub fn warn(msg: &str, fields: Value) {
    log("warn", msg, fields);
}

pub fn error(msg: &str, fields: Value) {
    log("error", msg, fields);
}

/// Counts lines that repeat instead of writing each: the first of a kind
/// in each [`Repeats::WINDOW`] is written, the rest are counted and the
/// count rides on the next one written (`"repeated": n`).
pub struct Repeats {
    /// Per kind: when its window started, and how many were held back.
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Repeats {
    /// How long one kind of line is written at most once.
    pub const WINDOW: Duration = Duration::from_secs(10);
    /// Kinds remembered at most (then forgotten all at once).
    const KINDS: usize = 512;

    pub fn new() -> Self {
        Repeats {
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a line of `kind` is written now: `Some(n)` with the number
    /// held back since the last one, or `None` to hold this one back.
    pub fn admit(&self, kind: &str) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if seen.len() >= Self::KINDS && !seen.contains_key(kind) {
            seen.clear();
        }
        match seen.get_mut(kind) {
            Some((start, held)) if now.duration_since(*start) < Self::WINDOW => {
                *held += 1;
                None
            }
            Some((start, held)) => {
                let n = *held;
                *start = now;
                *held = 0;
                Some(n)
            }
            None => {
                seen.insert(crate::job::clip(kind, 256), (now, 0));
                Some(0)
            }
        }
    }
}

impl Default for Repeats {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_bounded() {
        let long = "x".repeat(1 << 20);
        assert!(bounded(Value::String(long.clone())).as_str().unwrap().len() <= MAX_FIELD);
        let nested = serde_json::json!({"a": long});
        assert!(bounded(nested).as_str().unwrap().len() <= MAX_FIELD);
        assert_eq!(bounded(Value::from(5)), Value::from(5));
    }

    #[test]
    fn a_repeating_line_is_written_once_a_window_and_counted() {
        let r = Repeats::new();
        assert_eq!(r.admit("a"), Some(0));
        assert_eq!(r.admit("a"), None);
        assert_eq!(r.admit("a"), None);
        assert_eq!(r.admit("b"), Some(0));
        let mut seen = r.seen.lock().unwrap();
        seen.get_mut("a").unwrap().0 -= Repeats::WINDOW;
        drop(seen);
        assert_eq!(r.admit("a"), Some(2));
    }
}
