//! Prometheus metrics of the tier, served by the supervisor at `/metrics`
//! (the same listener answers `/health`, see health.rs).
//!
//! Per-request figures come from the workers' event lines, worker states
//! and restarts from the supervisor itself, and the haproxy queue length is
//! read from haproxy's runtime API at scrape time. Render time and queue
//! wait are separate histograms: a slow tier is either slow to render or
//! short of workers, and the fix differs. docs/operations.md lists every
//! metric and ships alert rules.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use ssrd_worker::events::Outcome;

use super::haproxy_api::HaproxyApi;
use super::health::{BundleId, Health};
use super::reason::Reason;
use super::slot::SlotState;

/// Components beyond this many distinct names are counted as "_other", so a
/// caller sending random names cannot blow up the metric's cardinality.
const MAX_COMPONENTS: usize = 200;
/// The longest component name kept as a label value; a longer one is cut.
/// With [`MAX_COMPONENTS`], the labels of `/metrics` stay within a few
/// hundred KiB whatever callers send (docs/operations.md, "Metrics").
const MAX_LABEL: usize = 64;

/// A component name as a label value: letters, digits and `_.:/@-` (each
/// other character becomes `_`), at most [`MAX_LABEL`] of them.
fn label_value(name: &str) -> String {
    name.chars()
        .take(MAX_LABEL)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '@' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Every metric the tier exports.
pub struct Metrics {
    /// Holds them all, for encoding.
    registry: Registry,
    /// Seconds per rendered job, by component.
    pub render_duration: HistogramVec,
    /// Seconds from nginx receiving a request to its render starting.
    pub queue_wait: Histogram,
    /// Jobs per request.
    pub batch_size: Histogram,
    /// Jobs by outcome (`Outcome::ALL`).
    pub jobs: IntCounterVec,
    /// Requests rendered by workers.
    pub requests: IntCounter,
    /// Workers by state: starting, ready, draining, dead.
    pub workers: IntGaugeVec,
    /// Worker restarts by reason (`Reason::ALL`).
    pub restarts: IntCounterVec,
    /// JS heap in use, per worker slot.
    pub heap: IntGaugeVec,
    /// Resident memory, per worker slot.
    pub rss: IntGaugeVec,
    /// Requests waiting in haproxy's queue (read at scrape time).
    pub queue_length: IntGauge,
    /// Requests haproxy refused itself, by kind: `no_worker` (none in
    /// rotation) and `queue_timeout` (the queue wait ran out).
    pub refusals: IntCounterVec,
    /// haproxy's own counts behind `refusals` when last read (they restart
    /// from 0 with haproxy), so only the growth is added.
    refusals_seen: Mutex<HashMap<&'static str, u64>>,
    /// Bundle reloads by result (ok, failed).
    pub reloads: IntCounterVec,
    /// Requests put in quarantine (they crashed two workers).
    pub quarantined: IntCounter,
    /// Requests refused unrendered because they are quarantined.
    pub quarantine_refusals: IntCounter,
    /// Batches of trace spans workers failed to export (collector down,
    /// slow or refusing): what a broken collector costs, instead of renders.
    pub trace_export_failures: IntCounter,
    /// Requests whose caller went away before the answer (rendering
    /// stopped).
    pub abandoned: IntCounter,
    /// Jobs the workers answered from their render cache.
    pub cache_hits: IntCounter,
    /// Jobs of cached components that had to render.
    pub cache_misses: IntCounter,
    /// Render cache entries dropped, by reason: `space` (a component's
    /// maxEntries or the byte budget), `ttl`.
    pub cache_evictions: IntCounterVec,
    /// Bytes each worker's render cache holds.
    pub cache_bytes: IntGaugeVec,
    /// 1 for the bundle being served, labelled with its hash: which hosts
    /// run which bundle during a rolling deploy.
    bundle_info: IntGaugeVec,
    /// When the tier started serving its current bundle.
    bundle_loaded: prometheus::Gauge,
    /// 1 while the tier drains before a stop (/health answers 503).
    pub draining: IntGauge,
    /// Component names seen, to cap label cardinality.
    components: Mutex<HashSet<String>>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let ms_buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        let render_duration = HistogramVec::new(
            HistogramOpts::new(
                "ssrd_render_duration_seconds",
                "Time to render one job, by component.",
            )
            .buckets(ms_buckets.clone()),
            &["component"],
        )
        .expect("metric definition");
        let queue_wait = Histogram::with_opts(
            HistogramOpts::new(
                "ssrd_queue_wait_seconds",
                "Time from nginx receiving a request to a worker starting to render it.",
            )
            .buckets(ms_buckets),
        )
        .expect("metric definition");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("ssrd_batch_jobs", "Jobs per rendered request.")
                .buckets(vec![1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 50.0]),
        )
        .expect("metric definition");
        let jobs = IntCounterVec::new(
            Opts::new("ssrd_jobs_total", "Rendered jobs by outcome."),
            &["outcome"],
        )
        .expect("metric definition");
        let requests = IntCounter::new("ssrd_requests_total", "Requests rendered by workers.")
            .expect("metric definition");
        let workers = IntGaugeVec::new(
            Opts::new("ssrd_workers", "Render workers by state."),
            &["state"],
        )
        .expect("metric definition");
        let restarts = IntCounterVec::new(
            Opts::new("ssrd_worker_restarts_total", "Worker restarts by reason."),
            &["reason"],
        )
        .expect("metric definition");
        let heap = IntGaugeVec::new(
            Opts::new("ssrd_worker_heap_bytes", "JS heap in use, per worker."),
            &["worker"],
        )
        .expect("metric definition");
        let rss = IntGaugeVec::new(
            Opts::new("ssrd_worker_rss_bytes", "Resident memory, per worker."),
            &["worker"],
        )
        .expect("metric definition");
        let queue_length = IntGauge::new(
            "ssrd_haproxy_queue_length",
            "Requests waiting in haproxy's queue for a free worker.",
        )
        .expect("metric definition");
        let refusals = IntCounterVec::new(
            Opts::new(
                "ssrd_refused_requests_total",
                "Requests haproxy answered itself without a worker, by kind (each of nginx's two tries counts).",
            ),
            &["kind"],
        )
        .expect("metric definition");
        let reloads = IntCounterVec::new(
            Opts::new("ssrd_reloads_total", "Bundle reloads by result."),
            &["result"],
        )
        .expect("metric definition");
        let quarantined = IntCounter::new(
            "ssrd_quarantined_requests_total",
            "Requests quarantined because they crashed two workers or kept running to their deadline.",
        )
        .expect("metric definition");
        let quarantine_refusals = IntCounter::new(
            "ssrd_quarantine_refusals_total",
            "Requests refused unrendered because they are quarantined.",
        )
        .expect("metric definition");
        let trace_export_failures = IntCounter::new(
            "ssrd_trace_export_failures_total",
            "Batches of trace spans workers failed to export to the OTLP collector.",
        )
        .expect("metric definition");
        let abandoned = IntCounter::new(
            "ssrd_abandoned_requests_total",
            "Requests whose caller went away before the answer; their rendering stopped.",
        )
        .expect("metric definition");
        let cache_hits = IntCounter::new(
            "ssrd_render_cache_hits_total",
            "Jobs answered from a worker's render cache, without rendering.",
        )
        .expect("metric definition");
        let cache_misses = IntCounter::new(
            "ssrd_render_cache_misses_total",
            "Jobs of components the bundle declares cached that had to render.",
        )
        .expect("metric definition");
        let cache_evictions = IntCounterVec::new(
            Opts::new(
                "ssrd_render_cache_evictions_total",
                "Render cache entries dropped, by reason: space (maxEntries or the byte budget), ttl.",
            ),
            &["reason"],
        )
        .expect("metric definition");
        let cache_bytes = IntGaugeVec::new(
            Opts::new(
                "ssrd_render_cache_bytes",
                "Bytes held by the render cache, per worker (never above render_cache_bytes).",
            ),
            &["worker"],
        )
        .expect("metric definition");
        let bundle_info = IntGaugeVec::new(
            Opts::new(
                "ssrd_bundle_info",
                "The bundle being served (value 1), by the SHA-256 of its source.",
            ),
            &["sha256", "short"],
        )
        .expect("metric definition");
        let bundle_loaded = prometheus::Gauge::new(
            "ssrd_bundle_loaded_timestamp_seconds",
            "When the tier started serving its current bundle (Unix time).",
        )
        .expect("metric definition");
        let draining = IntGauge::new(
            "ssrd_draining",
            "1 while the tier drains before stopping (/health answers 503).",
        )
        .expect("metric definition");
        for c in [
            Box::new(render_duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(queue_wait.clone()),
            Box::new(batch_size.clone()),
            Box::new(jobs.clone()),
            Box::new(requests.clone()),
            Box::new(workers.clone()),
            Box::new(restarts.clone()),
            Box::new(heap.clone()),
            Box::new(rss.clone()),
            Box::new(queue_length.clone()),
            Box::new(refusals.clone()),
            Box::new(reloads.clone()),
            Box::new(quarantined.clone()),
            Box::new(quarantine_refusals.clone()),
            Box::new(trace_export_failures.clone()),
            Box::new(abandoned.clone()),
            Box::new(cache_hits.clone()),
            Box::new(cache_misses.clone()),
            Box::new(cache_evictions.clone()),
            Box::new(cache_bytes.clone()),
            Box::new(bundle_info.clone()),
            Box::new(bundle_loaded.clone()),
            Box::new(draining.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        // Make the labelled series exist from the start, so alerts and
        // dashboards see zeros rather than nothing.
        for outcome in Outcome::ALL {
            jobs.with_label_values(&[outcome.label()]);
        }
        for state in SlotState::LABELS {
            workers.with_label_values(&[state]);
        }
        for reason in Reason::ALL {
            restarts.with_label_values(&[reason.label()]);
        }
        for result in ["ok", "failed"] {
            reloads.with_label_values(&[result]);
        }
        for reason in ["space", "ttl"] {
            cache_evictions.with_label_values(&[reason]);
        }
        Arc::new(Metrics {
            registry,
            render_duration,
            queue_wait,
            batch_size,
            jobs,
            requests,
            workers,
            restarts,
            heap,
            rss,
            queue_length,
            refusals,
            refusals_seen: Mutex::new(HashMap::new()),
            reloads,
            quarantined,
            quarantine_refusals,
            trace_export_failures,
            abandoned,
            cache_hits,
            cache_misses,
            cache_evictions,
            cache_bytes,
            bundle_info,
            bundle_loaded,
            draining,
            components: Mutex::new(HashSet::new()),
        })
    }

    /// Records one job. A component name becomes a label once the bundle
    /// rendered it (the name is then the bundle's, not just a caller's);
    /// names it never rendered share `_unknown`, whatever their jobs came
    /// to (a bundle that throws a TypeError for a name it does not know
    /// would otherwise turn every caller's typo into a label).
    pub fn job(&self, component: Option<&str>, outcome: Outcome, seconds: f64) {
        self.jobs.with_label_values(&[outcome.label()]).inc();
        let label = component
            .map(|name| self.component_label(name, outcome == Outcome::Ok))
            .unwrap_or_else(|| "_unknown".to_string());
        self.render_duration
            .with_label_values(&[&label])
            .observe(seconds);
    }

    fn component_label(&self, name: &str, rendered: bool) -> String {
        let name = label_value(name);
        let mut seen = self.components.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(&name) {
            return name;
        }
        if !rendered {
            return "_unknown".to_string();
        }
        if seen.len() >= MAX_COMPONENTS {
            return "_other".to_string();
        }
        seen.insert(name.clone());
        name
    }

    /// haproxy's count of refusals of `kind` is now `total`: adds what it
    /// grew by since the last read (all of it after a haproxy restart).
    pub fn front_refusal(&self, kind: &'static str, total: u64) {
        let mut seen = self.refusals_seen.lock().unwrap_or_else(|p| p.into_inner());
        let last = seen.insert(kind, total).unwrap_or(0);
        let grown = if total >= last { total - last } else { total };
        self.refusals.with_label_values(&[kind]).inc_by(grown);
    }

    /// The bundle being served is now `id`.
    pub fn set_bundle(&self, id: &BundleId) {
        self.bundle_info.reset();
        self.bundle_info
            .with_label_values(&[&id.sha256, id.short()])
            .set(1);
        self.bundle_loaded.set(id.loaded_at);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Serves `/metrics` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    haproxy: HaproxyApi,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let metrics = Arc::clone(&metrics);
                let health = Arc::clone(&health);
                let haproxy = haproxy.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let metrics = Arc::clone(&metrics);
                        let health = Arc::clone(&health);
                        let haproxy = haproxy.clone();
                        async move {
                            Ok::<_, Infallible>(answer(req, &metrics, &health, &haproxy).await)
                        }
                    });
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
                });
            }
            _ = &mut shutdown => return,
        }
    }
}

async fn answer<B>(
    req: Request<B>,
    metrics: &Metrics,
    health: &Health,
    haproxy: &HaproxyApi,
) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => {}
        "/health" => return health.response(),
        _ => {
            let mut r = Response::new(Full::new(Bytes::from_static(
                b"not found; try /metrics or /health\n",
            )));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
    }
    if let Ok(rows) = haproxy.stats().await {
        let backend = |proxy: &str| {
            rows.iter()
                .find(|r| r.name == "BACKEND" && r.proxy == proxy)
        };
        if let Some(workers) = backend(crate::templates::BACKEND) {
            metrics.queue_length.set(workers.qcur as i64);
            metrics.front_refusal("queue_timeout", workers.econ);
        }
        if let Some(no_worker) = backend(crate::templates::NO_WORKER) {
            metrics.front_refusal("no_worker", no_worker.stot);
        }
    }
    let mut r = Response::new(Full::new(Bytes::from(metrics.encode())));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_chosen_names_never_grow_the_metrics() {
        let m = Metrics::new();
        m.job(Some("NavBar"), Outcome::Ok, 0.001);
        m.job(Some("NavBar"), Outcome::Error, 0.001);
        // Names the bundle never rendered (a naive bundle's TypeError for
        // an unknown name), however long or odd, share one label.
        for i in 0..1000 {
            let name = format!("{i}{}", "x".repeat(4 << 20 >> 10));
            m.job(Some(&name), Outcome::Error, 0.001);
            m.job(Some(&name), Outcome::Timeout, 0.001);
        }
        let text = m.encode();
        assert!(text.contains("component=\"NavBar\""), "{text}");
        assert!(text.contains("component=\"_unknown\""));
        assert!(text.len() < 64 * 1024, "{} bytes", text.len());
        // Rendered names are capped in number and in length, and only
        // plain characters reach a label.
        for i in 0..1000 {
            m.job(
                Some(&format!("C{i}\n\"{}", "y".repeat(1000))),
                Outcome::Ok,
                0.001,
            );
        }
        let text = m.encode();
        assert!(text.contains("component=\"_other\""));
        let longest = text
            .lines()
            .filter_map(|l| l.split("component=\"").nth(1))
            .map(|v| v.split('"').next().unwrap().len())
            .max()
            .unwrap();
        assert!(longest <= MAX_LABEL, "{longest}");
        assert!(text.len() < 1024 * 1024, "{} bytes", text.len());
    }
}
