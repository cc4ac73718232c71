//! Traces: one OpenTelemetry server span per render request and one child
//! span per job, exported over OTLP/HTTP (protobuf) when the standard
//! `OTEL_*` variables ask for it, and off otherwise.
//!
//! - **Parent.** A caller's W3C `traceparent`/`tracestate` (what
//!   OpenTelemetry's Faraday or Rack instrumentation adds) passes through
//!   nginx and haproxy unchanged; the request span continues that trace, or
//!   starts a new one when there is none.
//! - **Never on the render thread, never in a render's way.** Spans are
//!   made on the HTTP side after the render, with the job's own start and
//!   end times, and handed to the SDK's batch processor: a bounded queue
//!   (`OTEL_BSP_MAX_QUEUE_SIZE`, 2,048 spans) drained by its own thread,
//!   which drops spans when full rather than wait or grow. A collector that
//!   is down, slow or answering 500 costs a counter
//!   ([`export_failures`], `ssrd_trace_export_failures_total`).
//! - **Configuration** is OpenTelemetry's own: `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns tracing on;
//!   `OTEL_SERVICE_NAME` (default `ssrd`), `OTEL_RESOURCE_ATTRIBUTES`,
//!   `OTEL_TRACES_SAMPLER`/`_ARG` (default: follow the caller's sampled
//!   flag, else sample all), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*` work
//!   as documented for every OpenTelemetry SDK. `OTEL_SDK_DISABLED=true` or
//!   `OTEL_TRACES_EXPORTER=none` turn it off.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

/// How long one export may take before it counts as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Batches of spans this process failed to export (one tracer per worker
/// process); heartbeats carry it to the supervisor's metric.
static EXPORT_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Batches of spans this process failed to export so far.
pub fn export_failures() -> u64 {
    EXPORT_FAILURES.load(Ordering::Relaxed)
}

/// Tracing for one worker: on (a tracer and its provider) or off.
#[derive(Clone, Default)]
pub struct Tracing {
    /// `None` when tracing is off: every method is then a no-op.
    inner: Option<Arc<Inner>>,
}

struct Inner {
    /// Owns the batch processor's thread; shut down on [`Tracing::shutdown`].
    provider: SdkTracerProvider,
    /// Makes the spans.
    tracer: SdkTracer,
}

impl Tracing {
    /// Tracing as the `OTEL_*` variables say: off unless an OTLP endpoint
    /// is set. `Err` says what is wrong with the setup (the worker logs it
    /// and serves without traces).
    pub fn from_env() -> Result<Tracing, String> {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let endpoint = !var("OTEL_EXPORTER_OTLP_ENDPOINT").is_empty()
            || !var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_empty();
        if !endpoint
            || var("OTEL_SDK_DISABLED").eq_ignore_ascii_case("true")
            || var("OTEL_TRACES_EXPORTER").eq_ignore_ascii_case("none")
        {
            return Ok(Tracing::default());
        }
        use opentelemetry_otlp::{Protocol, WithExportConfig};
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("the OTLP/HTTP trace exporter: {e}"))?;
        let exporter = Counting { inner: exporter };
        let mut resource = Resource::builder();
        let named = !var("OTEL_SERVICE_NAME").is_empty()
            || var("OTEL_RESOURCE_ATTRIBUTES").contains("service.name=");
        if !named {
            resource = resource.with_service_name("ssrd");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("ssrd-worker");
        Ok(Tracing {
            inner: Some(Arc::new(Inner { provider, tracer })),
        })
    }

    /// Whether spans are made at all.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Starts the server span of a request that arrived at `start`, as a
    /// child of the caller's span when its headers carry one.
    pub fn request(&self, headers: &hyper::HeaderMap, request: RequestInfo) -> RequestSpan {
        let Some(inner) = &self.inner else {
            return RequestSpan::default();
        };
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let mut attributes = vec![
            KeyValue::new("http.request.method", request.method),
            KeyValue::new("http.route", request.route),
            KeyValue::new("url.path", request.path),
            KeyValue::new("ssrd.request_id", request.request_id),
        ];
        if let Some(wait) = request.queue_ms {
            attributes.push(KeyValue::new("ssrd.queue_ms", wait));
        }
        let span = inner
            .tracer
            .span_builder(format!("{} {}", request.method, request.route))
            .with_kind(SpanKind::Server)
            .with_start_time(request.start)
            .with_attributes(attributes)
            .start_with_context(&inner.tracer, &parent);
        RequestSpan {
            cx: Some(parent.with_span(span)),
            tracer: Some(inner.tracer.clone()),
        }
    }

    /// Exports what is queued (bounded by the exporter's timeout); at exit.
    pub fn shutdown(&self) {
        if let Some(inner) = &self.inner {
            let _ = inner.provider.shutdown();
        }
    }
}

/// What the request span says about its request.
pub struct RequestInfo {
    /// `POST`.
    pub method: &'static str,
    /// The route template (`/batch`, `/render/{name}`).
    pub route: &'static str,
    /// The path as asked.
    pub path: String,
    /// X-Request-Id, the same in every hop's log lines.
    pub request_id: String,
    /// When the worker read the request.
    pub start: SystemTime,
    /// How long it waited before the worker had it (since nginx received
    /// it), when nginx stamped it.
    pub queue_ms: Option<f64>,
}

/// One job, for its span.
pub struct JobInfo<'a> {
    /// The component's name (empty if the job named none).
    pub component: &'a str,
    /// `ok`, or the error's kind (`RenderTimeout`, `Throws`'s error name…).
    pub outcome: &'a str,
    /// When its render started and ended.
    pub start: SystemTime,
    pub end: SystemTime,
    /// Bytes of HTML rendered (0 when it failed).
    pub html_bytes: usize,
    /// The error, when it failed: message and stack.
    pub error: Option<(&'a str, &'a str)>,
    /// `hit` or `miss` when its component is cached (`ssrd.cache`).
    pub cache: Option<&'static str>,
}

/// A request's span while it is served; [`RequestSpan::end`] ends it.
#[derive(Default)]
pub struct RequestSpan {
    /// The caller's context with the request span in it; `None` when off.
    cx: Option<Context>,
    /// Makes the job spans.
    tracer: Option<SdkTracer>,
}

impl RequestSpan {
    /// The trace this request belongs to (32 hex digits), for log lines and
    /// the `traceresponse` header; `None` when tracing is off.
    pub fn trace_id(&self) -> Option<String> {
        self.span_context().map(|c| c.trace_id().to_string())
    }

    /// `traceresponse` (W3C Trace Context level 2): the request's trace and
    /// span, so a caller (and nginx's access log) learn the trace the tier
    /// started when the caller sent none.
    pub fn traceresponse(&self) -> Option<String> {
        let c = self.span_context()?;
        Some(format!(
            "00-{}-{}-{:02x}",
            c.trace_id(),
            c.span_id(),
            c.trace_flags().to_u8()
        ))
    }

    fn span_context(&self) -> Option<SpanContext> {
        let cx = self.cx.as_ref()?;
        let sc = cx.span().span_context().clone();
        sc.is_valid().then_some(sc)
    }

    /// Adds one job's span, a child of the request's.
    pub fn job(&self, job: JobInfo<'_>) {
        let (Some(cx), Some(tracer)) = (&self.cx, &self.tracer) else {
            return;
        };
        let mut span = tracer
            .span_builder(format!("render {}", job.component))
            .with_kind(SpanKind::Internal)
            .with_start_time(job.start)
            .with_attributes([
                KeyValue::new("ssrd.component", job.component.to_string()),
                KeyValue::new("ssrd.outcome", job.outcome.to_string()),
                KeyValue::new("ssrd.html_bytes", job.html_bytes as i64),
                KeyValue::new(
                    "ssrd.duration_ms",
                    job.end
                        .duration_since(job.start)
                        .unwrap_or_default()
                        .as_secs_f64()
                        * 1000.0,
                ),
            ])
            .start_with_context(tracer, cx);
        if let Some(cache) = job.cache {
            span.set_attribute(KeyValue::new("ssrd.cache", cache));
        }
        if let Some((message, stack)) = job.error {
            span.add_event_with_timestamp(
                "exception",
                job.end,
                vec![
                    KeyValue::new("exception.type", job.outcome.to_string()),
                    KeyValue::new("exception.message", message.to_string()),
                    KeyValue::new("exception.stacktrace", stack.to_string()),
                ],
            );
            span.set_status(Status::error(job.outcome.to_string()));
        }
        span.end_with_timestamp(job.end);
    }

    /// Ends the request span with the answer's status.
    pub fn end(self, status: u16, end: SystemTime) {
        let Some(cx) = self.cx else {
            return;
        };
        let span = cx.span();
        span.set_attribute(KeyValue::new("http.response.status_code", status as i64));
        if status >= 500 {
            span.set_status(Status::error(format!("HTTP {status}")));
        }
        span.end_with_timestamp(end);
    }
}

/// hyper's headers as the propagator reads them.
struct Headers<'a>(&'a hyper::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The OTLP exporter, counting the batches that fail ([`export_failures`]).
#[derive(Debug)]
struct Counting<E> {
    /// Does the exporting.
    inner: E,
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let export = self.inner.export(batch);
        async move {
            let result = export.await;
            if result.is_err() {
                EXPORT_FAILURES.fetch_add(1, Ordering::Relaxed);
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_an_endpoint_and_every_call_is_a_no_op() {
        // The test process has no OTEL_* variables set.
        let t = Tracing::from_env().unwrap();
        assert!(!t.enabled());
        let span = t.request(
            &hyper::HeaderMap::new(),
            RequestInfo {
                method: "POST",
                route: "/batch",
                path: "/batch".into(),
                request_id: "r".into(),
                start: SystemTime::now(),
                queue_ms: None,
            },
        );
        assert_eq!(span.trace_id(), None);
        assert_eq!(span.traceresponse(), None);
        span.end(200, SystemTime::now());
        assert_eq!(export_failures(), 0);
    }

    #[test]
    fn the_callers_traceparent_is_read_from_the_headers() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        let cx = TraceContextPropagator::new().extract(&Headers(&headers));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_remote());
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(sc.span_id().to_string(), "b7ad6b7169203331");
    }
}
