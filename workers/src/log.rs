//! Structured logs: one JSON object per line on stderr.
//!
//! stdout is reserved for the worker's ready line (the supervisor reads it),
//! so everything else goes to stderr. Lines about a request carry its
//! `request_id` (from nginx's X-Request-Id when present).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

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
        line.extend(extra);
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
