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
    /// The render took the process's resident memory past its limit (memory
    /// outside the heap and the off-heap budget); the worker retires.
    MemoryLimitExceeded,
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
            Failure::MemoryLimitExceeded => "MemoryLimitExceeded",
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
            | Failure::MemoryLimitExceeded
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

    /// This error within the documented sizes (docs/worker.md, "Limits"):
    /// a name of at most [`MAX_ERROR_NAME`] bytes, a message of at most
    /// [`MAX_ERROR_TEXT`] (a thrown non-string value whose JSON is larger
    /// becomes that JSON, cut), and a stack of at most [`MAX_STACK_FRAMES`]
    /// frames and [`MAX_ERROR_TEXT`] bytes. A bundle's error is answered,
    /// logged and traced, so none of them can carry megabytes.
    pub fn capped(mut self) -> Self {
        self.name = clip(&self.name, MAX_ERROR_NAME);
        if let Some(kind) = &self.kind {
            self.kind = Some(clip(kind, MAX_ERROR_NAME));
        }
        match &*self.message {
            serde_json::Value::String(m) if m.len() > MAX_ERROR_TEXT => {
                self.message = Box::new(serde_json::Value::String(clip(m, MAX_ERROR_TEXT)));
            }
            serde_json::Value::String(_) => {}
            other => {
                let json = other.to_string();
                if json.len() > MAX_ERROR_TEXT {
                    self.message = Box::new(serde_json::Value::String(clip(&json, MAX_ERROR_TEXT)));
                }
            }
        }
        let mut left = MAX_ERROR_TEXT;
        let frames = self.stack.len();
        self.stack.truncate(MAX_STACK_FRAMES);
        for frame in &mut self.stack {
            *frame = clip(frame, left);
            left = left.saturating_sub(frame.len());
        }
        self.stack.retain(|f| !f.is_empty() || frames == 1);
        if frames > self.stack.len() {
            self.stack
                .push(format!("...({} more frames)", frames - self.stack.len()));
        }
        self
    }

    /// The message as text (a thrown non-string value as its JSON).
    pub fn message_text(&self) -> String {
        match &*self.message {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// The longest error name (and `type`) kept, in bytes.
pub const MAX_ERROR_NAME: usize = 256;
/// The longest error message kept, and the most stack text, in bytes.
pub const MAX_ERROR_TEXT: usize = 16 * 1024;
/// The most stack frames kept.
pub const MAX_STACK_FRAMES: usize = 64;

/// `text` cut to at most `max` bytes (at a character boundary), marked as
/// cut when it was.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    const MARK: &str = "...(truncated)";
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
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

    #[test]
    fn capped_errors_stay_within_the_documented_sizes() {
        let mut e = JobError::new(500, &"N".repeat(10_000), "m".repeat(5 << 20));
        e.stack = (0..1000)
            .map(|i| format!("at f{i} ({})", "x".repeat(100)))
            .collect();
        let e = e.capped();
        assert!(e.name.len() <= MAX_ERROR_NAME);
        assert!(e.message_text().len() <= MAX_ERROR_TEXT);
        assert!(e.message_text().ends_with("(truncated)"));
        assert!(e.stack.len() <= MAX_STACK_FRAMES + 1);
        assert!(e.stack.iter().map(String::len).sum::<usize>() <= MAX_ERROR_TEXT + 40);
        assert!(e.stack.last().unwrap().contains("more frames"));
        let thrown = JobError {
            message: Box::new(serde_json::json!({"big": "x".repeat(1 << 20)})),
            ..JobError::new(500, "Error", "")
        }
        .capped();
        assert!(thrown.message_text().len() <= MAX_ERROR_TEXT + 2);
        assert_eq!(
            clip("h\u{e9}llo world, a long one", 17),
            "h\u{e9}...(truncated)"
        );
        let small = JobError::new(404, "ReferenceError", "nope").capped();
        assert_eq!(small, JobError::new(404, "ReferenceError", "nope"));
    }
}
