//! `GET /stats`: the worker's counters, heap and RSS as JSON, for
//! operators and tests.

use serde_json::json;

use crate::events::Outcome;
use crate::procfs;

use super::Ctx;

pub(super) fn stats_json(ctx: &Ctx) -> String {
    let stats = ctx.queue.stats();
    let jobs: serde_json::Map<String, serde_json::Value> = Outcome::ALL
        .iter()
        .map(|o| (o.label().to_string(), stats.jobs(*o).into()))
        .collect();
    json!({
        "pid": std::process::id(),
        "uptime_s": ctx.started.elapsed().as_secs_f64(),
        "render_timeout_ms": ctx.queue.render_timeout().as_millis() as u64,
        "rss_bytes": procfs::rss_bytes(),
        "requests": stats.requests,
        "jobs": jobs,
        "heap": stats.heap,
        "busy": stats.busy,
        "current_request": stats.current,
        "abandoned": stats.abandoned,
        "render_cache": stats.cache,
        "settings": ctx.config.settings,
    })
    .to_string()
}
