//! Defaults, written once, that every entry point shares: `ssrd worker`,
//! `ssrd render`, and `ssrd up` (which passes them on to its workers).

/// Per-job render deadline, ms.
pub const RENDER_TIMEOUT_MS: u64 = 1000;
/// The most one request may render for, all its jobs together, ms. Jobs
/// past it are answered RenderTimeout without running. Well under
/// haproxy's and nginx's upstream timeouts (60 s), so neither gives up on a
/// worker that is still rendering.
pub const REQUEST_BUDGET_MS: u64 = 5000;
/// The isolate's JS heap limit, MiB.
pub const HEAP_LIMIT_MB: u64 = 256;
/// V8's young-generation semi-space, MiB. SSR makes lots of short-lived
/// garbage; a larger semi-space means fewer scavenges (bench/README.md).
pub const SEMI_SPACE_MB: u64 = 16;
/// Largest accepted request body, bytes.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// Times each of the bundle's warm-up jobs is rendered before ready.
pub const WARMUP_ROUNDS: u32 = 3;
/// Time a client has to send the request headers, ms.
pub const HEADER_TIMEOUT_MS: u64 = 10_000;
/// Time a client has to send the request body, ms.
pub const BODY_TIMEOUT_MS: u64 = 30_000;
/// The largest answer (HTML plus meta) one job may return, MiB.
pub const MAX_HTML_MB: u64 = 32;
/// Resident memory (MiB) after which a worker retires once its request is
/// answered; a render that takes it a quarter past this is stopped at once
/// (memory_guard.rs). Room for the default 256 MiB heap, as much again
/// outside it, and V8's own overhead.
pub const RSS_LIMIT_MB: u64 = 1024;

/// The resident memory past which a running render is stopped, for a
/// retirement limit of `rss_limit` bytes (0: neither).
pub fn memory_guard_bytes(rss_limit: u64) -> u64 {
    rss_limit.saturating_add(rss_limit / 4)
}
