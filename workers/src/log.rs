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
