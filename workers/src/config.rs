//! What `ssrd worker` runs with (options.rs makes it from the flags).

use std::net::IpAddr;
use std::time::Duration;

use crate::boot::BootConfig;

/// What one request can see of the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// One isolate serves every request: the bundle's module state and
    /// globals persist between requests (the built-ins are frozen). Fast.
    #[default]
    Shared,
    /// Each request runs in a fresh isolate started from the snapshot:
    /// nothing of an earlier request is left. Costs an isolate start per
    /// request, and renders run without the JIT's warm-up.
    Request,
}

impl std::str::FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "shared" => Ok(Isolation::Shared),
            "request" => Ok(Isolation::Request),
            other => Err(format!("isolation is shared or request, not {other:?}")),
        }
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolation::Shared => "shared",
            Isolation::Request => "request",
        })
    }
}

/// Everything `ssrd worker` is configured with.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Address to bind; loopback unless the operator says otherwise.
    pub host: IpAddr,
    /// Port to bind; 0 picks a free one (reported in the ready line).
    pub port: u16,
    /// A listening socket inherited from the supervisor, instead of binding.
    /// The supervisor keeps its own copy open, so connections that arrive
    /// while this process is dead or restarting wait in the kernel's accept
    /// queue for the next worker instead of being refused.
    pub listen_fd: Option<i32>,
    /// How the engine is started (bundle, snapshot, limits, warm-up).
    pub boot: BootConfig,
    /// HTTP limits.
    pub http: HttpConfig,
    /// Extra V8 flags for this process, space-separated.
    pub v8_flags: String,
    /// Emit per-request events and heartbeats on stdout (for the supervisor).
    pub events: bool,
    /// Write the ready line and events to this inherited descriptor instead
    /// of stdout.
    pub events_fd: Option<i32>,
    /// The most one request may render for, all its jobs together.
    pub request_budget: Duration,
    /// An inherited file to name the request in flight on (the slate).
    pub slate_fd: Option<i32>,
    /// Read control lines (quarantines) from stdin.
    pub control: bool,
    /// Retire (exit 76) after a request that left the process's RSS above
    /// this many bytes; 0 = never.
    pub rss_limit_bytes: u64,
    /// Whether requests share one isolate.
    pub isolation: Isolation,
    /// The render cache's byte budget; 0 = off.
    pub render_cache_bytes: u64,
    /// SHA-256 (hex) of the bundle's source: shortened into `X-Ssrd-Bundle`
    /// on every answer; empty: no header.
    pub bundle_id: String,
}

impl WorkerConfig {
    /// The first 12 hex digits of the bundle's hash, as headers show it.
    pub fn bundle_short(&self) -> &str {
        short_hash(&self.bundle_id)
    }

    /// The settings `/stats` shows.
    pub fn settings(&self) -> serde_json::Value {
        serde_json::json!({
            "bundle": self.boot.bundle,
            "bundle_sha256": self.bundle_id,
            "snapshot": self.boot.snapshot,
            "render_timeout_ms": self.boot.render_timeout.as_millis() as u64,
            "request_budget_ms": self.request_budget.as_millis() as u64,
            "heap_limit_mb": self.boot.heap_limit_bytes >> 20,
            "semi_space_mb": self.boot.semi_space_bytes >> 20,
            "max_html_mb": self.boot.max_answer_bytes >> 20,
            "rss_limit_mb": self.rss_limit_bytes >> 20,
            "isolation": self.isolation.to_string(),
            "warmup_rounds": self.boot.warmup_rounds,
            "max_body_bytes": self.http.max_body_bytes,
            "max_batch_jobs": self.http.max_batch_jobs,
            "header_timeout_ms": self.http.header_timeout.as_millis() as u64,
            "body_timeout_ms": self.http.body_timeout.as_millis() as u64,
            "v8_flags": self.v8_flags,
            "render_cache_bytes": self.render_cache_bytes,
        })
    }
}

/// A bundle hash as headers, `/health` and metrics labels show it: its
/// first 12 hex digits (the supervisor uses the same).
pub fn short_hash(sha256: &str) -> &str {
    &sha256[..sha256.len().min(12)]
}

/// Limits of the HTTP side.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The most jobs one batch may hold (more: 400).
    pub max_batch_jobs: usize,
    /// The bundle wants each rendered job's `html` in Hypernova's placement
    /// markup (unless the caller asks `?markup=0` or `?markup=1`).
    pub wrap_placement: bool,
    /// Development mode: failed jobs' fallback markup carries their error
    /// for the page's author (`--dev`).
    pub dev_errors: bool,
    /// How long a client may take to send the request headers.
    pub header_timeout: Duration,
    /// How long a client may take to send the body.
    pub body_timeout: Duration,
    /// On shutdown, how long in-flight requests may take to finish.
    pub drain_timeout: Duration,
    /// The worker's effective settings, shown at `/stats` so an operator
    /// (or a test) sees what the process actually runs with.
    pub settings: serde_json::Value,
    /// The short hash of the bundle this process renders, sent on every
    /// answer as `X-Ssrd-Bundle` (made once, not per answer): during a
    /// rolling deploy a caller (or an operator with curl) sees which bundle
    /// rendered each page.
    pub bundle_header: Option<hyper::header::HeaderValue>,
}

impl HttpConfig {
    /// On shutdown, how long a worker lets in-flight requests finish (not
    /// an option: the supervisor's own shutdown timeout bounds it anyway).
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
}
