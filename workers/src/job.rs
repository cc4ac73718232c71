//! One render job as the engine sees it: what comes back when it succeeds
//! ([`Rendered`]) and when it fails ([`JobError`], with its [`Cause`]).
//!
//! These types know nothing about the wire: `protocol.rs` writes them in
//! Hypernova's `/batch` shapes (the error object, `statusCode`),
//! `js_runtime.rs` and `answer.rs` produce them. Failures the host decides
//! (rather than the bundle throwing) have one home here, [`Failure`], so
//! their names are never spelled in two places.

/// A successful render.
#[derive(Debug)]
pub struct Rendered {
    /// The markup the component produced.
    pub html: String,
    /// `meta` as JSON text (`{}` unless the bundle returned some).
    pub meta: Option<String>,
}

/// A failure the host (not the bundle) decides.
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
    /// The error's name callers see.
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

    /// This failure, with a message saying what exactly happened.
    pub fn error(self, message: impl Into<String>) -> JobError {
        JobError::new(Cause::Host(self), self.name(), message)
    }
}

/// Who decided that a job failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The host: the job was malformed, or its render ran out of time,
    /// heap or memory, answered too much or nothing.
    Host(Failure),
    /// The bundle's render threw or rejected. `code` is the status the
    /// bundle gave its error (the bundle contract's `statusCode`, 400 to
    /// 599: 404 for a component it does not know), 500 when none.
    Bundle {
        /// The bundle's status for the failure.
        code: u16,
    },
}

/// A job-level failure: what the bundle (or the host) said went wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    /// Error class name, e.g. "ReferenceError", "RenderTimeout".
    pub name: String,
    /// Set only for a thrown non-Error value: what kind of value it was.
    pub kind: Option<String>,
    /// Usually a string; a thrown non-Error value is passed through as is
    /// (boxed: a `Value` is large and errors travel inside every `Result`).
    pub message: Box<serde_json::Value>,
    /// The JS stack split at each "\n    ".
    pub stack: Vec<String>,
    /// Who decided it: what the outcome counters, the supervisor and the
    /// answer's status go by.
    pub cause: Cause,
}

impl JobError {
    /// An error with this cause and name, its stack a single line.
    pub fn new(cause: Cause, name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        JobError {
            name: name.to_string(),
            kind: None,
            stack: vec![format!("{name}: {message}")],
            message: Box::new(serde_json::Value::String(message)),
            cause,
        }
    }

    /// The host failure that decided it, if the host did.
    pub fn failure(&self) -> Option<Failure> {
        match self.cause {
            Cause::Host(f) => Some(f),
            Cause::Bundle { .. } => None,
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

    const THROWN: Cause = Cause::Bundle { code: 500 };

    #[test]
    fn host_failures_carry_their_kind_and_name() {
        let e = Failure::RenderTimeout.error("ran past 1000 ms");
        assert_eq!(e.failure(), Some(Failure::RenderTimeout));
        assert_eq!(e.name, "RenderTimeout");
        assert_eq!(e.stack, ["RenderTimeout: ran past 1000 ms"]);
        assert_eq!(JobError::new(THROWN, "TypeError", "x").failure(), None);
    }

    #[test]
    fn capped_errors_stay_within_the_documented_sizes() {
        let mut e = JobError::new(THROWN, &"N".repeat(10_000), "m".repeat(5 << 20));
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
            ..JobError::new(THROWN, "Error", "")
        }
        .capped();
        assert!(thrown.message_text().len() <= MAX_ERROR_TEXT + 2);
        assert_eq!(
            clip("h\u{e9}llo world, a long one", 17),
            "h\u{e9}...(truncated)"
        );
        let not_found = Cause::Bundle { code: 404 };
        let small = JobError::new(not_found, "ReferenceError", "nope").capped();
        assert_eq!(small, JobError::new(not_found, "ReferenceError", "nope"));
    }
}
