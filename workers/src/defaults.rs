//! Defaults and ranges, written once, that every entry point shares:
//! `ssrd worker`, `ssrd render`, and `ssrd up` (which passes them on to its
//! workers and checks its options against the same ranges before anything
//! starts, so no option can start a tier whose workers refuse it).

use std::ops::RangeInclusive;

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
/// On shutdown, how long a worker lets in-flight requests finish.
pub const DRAIN_TIMEOUT_MS: u64 = 30_000;
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

/// The most jobs one `/batch` request may hold.
pub const MAX_BATCH_JOBS: u64 = 1000;
/// What `--max-batch-jobs` may be.
pub const MAX_BATCH_JOBS_RANGE: RangeInclusive<u64> = 1..=100_000;
/// What `--render-timeout-ms` may be.
pub const RENDER_TIMEOUT_MS_RANGE: RangeInclusive<u64> = 1..=600_000;
/// What `--request-budget-ms` may be.
pub const REQUEST_BUDGET_MS_RANGE: RangeInclusive<u64> = 1..=3_600_000;
/// What `--heap-limit-mb` may be.
pub const HEAP_LIMIT_MB_RANGE: RangeInclusive<u64> = 16..=16_384;
/// What `--semi-space-mb` may be.
pub const SEMI_SPACE_MB_RANGE: RangeInclusive<u64> = 1..=256;
/// What `--max-html-mb` may be.
pub const MAX_HTML_MB_RANGE: RangeInclusive<u64> = 1..=1024;
/// What `--rss-limit-mb` may be (0: off).
pub const RSS_LIMIT_MB_RANGE: RangeInclusive<u64> = 0..=1_048_576;
/// What a client timeout (`--header-timeout-ms`, `--body-timeout-ms`) may be.
pub const CLIENT_TIMEOUT_MS_RANGE: RangeInclusive<u64> = 1..=3_600_000;
/// What `--max-body-bytes` may be (1 GiB at most).
pub const MAX_BODY_BYTES_RANGE: RangeInclusive<u64> = 1..=(1 << 30);
/// What `--warmup-rounds` may be.
pub const WARMUP_ROUNDS_RANGE: RangeInclusive<u64> = 0..=1000;

/// A range as clap's integer parser takes it.
pub const fn clap_range(r: RangeInclusive<u64>) -> RangeInclusive<i64> {
    (*r.start() as i64)..=(*r.end() as i64)
}
