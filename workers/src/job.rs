//! One render job as the engine sees it: what comes back when it succeeds
//! ([`Rendered`]) and when it fails ([`JobError`]).
//!
//! These types know nothing about the wire: `protocol.rs` puts them into
//! Hypernova's `/batch` shapes, `js_runtime.rs` produces them. Failures the
//! host decides (rather than the bundle throwing) have one home here,
//! [`Failure`], so their names and statuses are never spelled in two places.

use serde::{Deserialize, Serialize};

/// A successful render.
#[derive(Debug)]
pub struct Rendered {
    /// The markup the component produced.
    pub html: String,
    /// `meta` as JSON text (`{}` unless the bundle returned some).
    pub meta: Option<String>,
}

/// A failure the host (not the bundle) decides, with its name and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The job itself is malformed (not an object, no name, bad props).
    BadRequest,
    /// The job ran past its deadline and was stopped.
    RenderTimeout,
    /// The job exhausted the isolate's JS heap; the worker retires.
    HeapLimitExceeded,
    /// The answer (HTML and meta) is over the per-job size limit.
    AnswerTooLarge,
    /// The component rendered no HTML at all (`""`). Hypernova fails such a
    /// job, so its client inserts fallback markup and the browser renders
    /// the component; a success with empty HTML would leave nothing there.
    EmptyRender,
    /// The host glue misbehaved, or something believed impossible happened.
    InternalError,
}

impl Failure {
    /// The `error.name` callers see.
    pub fn name(self) -> &'static str {
        match self {
            Failure::BadRequest => "BadRequest",
            Failure::RenderTimeout => "RenderTimeout",
            Failure::HeapLimitExceeded => "HeapLimitExceeded",
            Failure::AnswerTooLarge => "AnswerTooLarge",
            Failure::EmptyRender => "EmptyRender",
            Failure::InternalError => "InternalError",
        }
    }

    /// The job's `statusCode`.
    pub fn status(self) -> u16 {
        match self {
            Failure::BadRequest => 400,
            Failure::RenderTimeout
            | Failure::HeapLimitExceeded
            | Failure::AnswerTooLarge
            | Failure::EmptyRender
            | Failure::InternalError => 500,
        }
    }

    /// This failure, with a message saying what exactly happened.
    pub fn error(self, message: impl Into<String>) -> JobError {
        let mut e = JobError::new(self.status(), self.name(), message);
        e.failure = Some(self);
        e
    }
}

/// A job-level failure in Hypernova's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    /// Error class name, e.g. "ReferenceError", "RenderTimeout".
    pub name: String,
    /// Hypernova only sets `type` for thrown non-Error values.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    /// Usually a string; a thrown non-Error value is passed through as is
    /// (boxed: a `Value` is large and errors travel inside every `Result`).
    pub message: Box<serde_json::Value>,
    /// The JS stack split at each "\n    ".
    #[serde(default)]
    pub stack: Vec<String>,
    /// The job's HTTP-like status (not serialised inside `error`).
    #[serde(skip)]
    pub status: u16,
    /// Set when the host decided the failure (not serialised): what the
    /// outcome counters and the supervisor go by, instead of the name.
    #[serde(skip)]
    pub failure: Option<Failure>,
}

impl JobError {
    /// An error with this status and name, its stack a single line.
    pub fn new(status: u16, name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        JobError {
            name: name.to_string(),
            kind: None,
            stack: vec![format!("{name}: {message}")],
            message: Box::new(serde_json::Value::String(message)),
            status,
            failure: None,
        }
    }

    /// The message as text (a thrown non-string value as its JSON).
    pub fn message_text(&self) -> String {
        match &*self.message {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// What one job came to.
pub type JobOutcome = Result<Rendered, JobError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_failures_carry_their_kind_but_serialise_like_hypernova() {
        let e = Failure::RenderTimeout.error("ran past 1000 ms");
        assert_eq!((e.status, e.failure), (500, Some(Failure::RenderTimeout)));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name": "RenderTimeout", "message": "ran past 1000 ms",
                               "stack": ["RenderTimeout: ran past 1000 ms"]})
        );
        assert_eq!(Failure::BadRequest.error("x").status, 400);
    }
}
