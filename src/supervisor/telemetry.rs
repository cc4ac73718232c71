//! Worker events and slot states → Prometheus metrics (metrics.rs defines
//! them and serves them).

use ssrd_worker::events;

use super::metrics::Metrics;
use super::slot::{Slot, SlotState};

/// One rendered request: jobs by outcome and component, batch size, and
/// the wait before rendering (queue wait, apart from render time).
pub fn record_request(m: &Metrics, request: &events::Request) {
    m.requests.inc();
    m.batch_size.observe(request.jobs.len() as f64);
    for job in &request.jobs {
        m.job(job.name.as_deref(), job.outcome, job.ms / 1000.0);
    }
    m.queue_wait.observe(request.wait_ms / 1000.0);
    if request.abandoned {
        m.abandoned.inc();
    }
}

/// A worker's memory figures, from a request event or a heartbeat.
pub fn record_memory(m: &Metrics, worker: &str, heap_used: u64, rss: Option<u64>) {
    m.heap
        .with_label_values(&[worker])
        .set(heap_used.min(i64::MAX as u64) as i64);
    if let Some(rss) = rss {
        m.rss
            .with_label_values(&[worker])
            .set(rss.min(i64::MAX as u64) as i64);
    }
}

/// A worker's render cache figures from a heartbeat: the counters grow by
/// what changed since `before` (that process's last heartbeat), the bytes
/// gauge is set.
pub fn record_cache(
    m: &Metrics,
    worker: &str,
    before: events::CacheFigures,
    now: events::CacheFigures,
) {
    m.cache_hits.inc_by(now.hits.saturating_sub(before.hits));
    m.cache_misses
        .inc_by(now.misses.saturating_sub(before.misses));
    m.cache_evictions
        .with_label_values(&["space"])
        .inc_by(now.evictions.saturating_sub(before.evictions));
    m.cache_evictions
        .with_label_values(&["ttl"])
        .inc_by(now.expired.saturating_sub(before.expired));
    m.cache_bytes
        .with_label_values(&[worker])
        .set(now.bytes.min(i64::MAX as u64) as i64);
}

/// Workers by state.
pub fn update_gauges(m: &Metrics, slots: &[Slot]) {
    for label in SlotState::LABELS {
        let n = slots.iter().filter(|s| s.state.label() == label).count();
        m.workers.with_label_values(&[label]).set(n as i64);
    }
}
