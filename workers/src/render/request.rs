//! What the render thread is asked and what it answers, in its own terms:
//! a component and its props in, an outcome out. The HTTP side and `ssrd
//! render` make requests from the wire (protocol.rs) and write the wire
//! from the outcomes; tokens, placement markup and statuses never reach the
//! render thread.

use serde_json::value::RawValue;

use crate::job::{JobError, JobOutcome};

/// One component to render.
#[derive(Debug)]
pub struct RenderRequest {
    /// The registered component name.
    pub name: String,
    /// The props as raw JSON text, any JSON value (V8 parses them once).
    pub props: Box<RawValue>,
    /// The job's opaque metadata as raw JSON text, when the caller sent any
    /// (the bundle gets it as `context.metadata`).
    pub metadata: Option<Box<RawValue>>,
}

/// One job of a request as the render thread takes it: a component to
/// render, or why the caller's job cannot be rendered (it is not rendered,
/// but counted and reported with the rest, in its place).
pub type JobRequest = Result<RenderRequest, JobError>;

/// What came of one job, in request order.
#[derive(Debug)]
pub struct RenderOutcome {
    /// The component, as asked (none when the job was malformed).
    pub name: Option<String>,
    /// The props, handed back once rendered so that whoever writes the
    /// answer (placement markup embeds them) never has to copy them.
    pub props: Option<Box<RawValue>>,
    /// The HTML, or the failure that prevented it.
    pub outcome: JobOutcome,
    /// Milliseconds spent on this job.
    pub duration_ms: f64,
    /// When its render started (wall clock), for the job's trace span.
    pub started_at: std::time::SystemTime,
    /// What the render cache did for it: `None` when the component is
    /// not cached (or the cache is off).
    pub cache: Option<CacheUse>,
}

/// What the render cache did for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Answered from the cache; V8 was not entered.
    Hit,
    /// Rendered (and kept, if it succeeded and fits).
    Miss,
}

impl CacheUse {
    /// As trace attributes show it.
    pub fn label(self) -> &'static str {
        match self {
            CacheUse::Hit => "hit",
            CacheUse::Miss => "miss",
        }
    }
}
