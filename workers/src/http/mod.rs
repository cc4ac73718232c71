//! The worker's HTTP/1.1 server (hyper) on loopback.
//!
//! Routes:
//! - `POST /batch`: Hypernova's batch protocol (protocol.md);
//! - `POST /render/{name}`: props as the body, HTML back (`text/html`), or
//!   the job's status with `X-Ssrd-Error` and a line of text;
//! - `GET /health`: 200 while the worker takes work;
//! - `GET /stats`: counters, heap and RSS as JSON, for operators.
//!
//! Every phase is bounded: header read, body read (body.rs), and the wait
//! for the render thread. A failed request is answered in one form for
//! every route (error.rs says which and why).
//!
//! - this file: the accept loop, graceful drain, the request id and routing;
//! - `handlers.rs`: `/batch` and `/render/{name}` (quarantine admission,
//!   placement markup, hand-over to the render thread);
//! - `stats.rs`: the `/stats` JSON;
//! - `responses.rs`: building answers, errors in the caller's form.

mod handlers;
mod responses;
mod stats;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;

use crate::config::HttpConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::event_sink::EventSink;
use crate::hangups::Hangups;
use crate::log;
use crate::quarantine::Quarantine;
use crate::render::{Origin, RenderQueue};
use crate::trace::{RequestInfo, RequestSpan, Tracing};

use handlers::{batch, render_one};
use responses::{error_response, json_response, method_not_allowed};
use stats::stats_json;

/// What every request handler can see.
pub(super) struct Ctx {
    /// Hands work to the render thread.
    pub(super) queue: RenderQueue,
    /// Requests refused unrendered (they crashed workers).
    pub(super) quarantine: Quarantine,
    /// Callers that hung up, as the supervisor reports them.
    pub(super) hangups: Hangups,
    /// Reports quarantined requests to the supervisor.
    pub(super) events: EventSink,
    /// Request and job spans (off unless OTEL_* asks; trace.rs).
    pub(super) tracing: Tracing,
    /// Limits.
    pub(super) config: HttpConfig,
    /// For `/stats` uptime.
    pub(super) started: Instant,
    /// Numbers requests that arrive without an X-Request-Id.
    pub(super) seq: AtomicU64,
}

pub(super) type Body = Full<Bytes>;

/// What the HTTP side shares with the rest of the worker besides the
/// render queue: the supervisor's word on requests, and telemetry.
pub struct Links {
    /// Requests refused unrendered (they crashed workers).
    pub quarantine: Quarantine,
    /// Callers that hung up, as the supervisor reports them.
    pub hangups: Hangups,
    /// Reports quarantined requests to the supervisor.
    pub events: EventSink,
    /// Request and job spans.
    pub tracing: Tracing,
}

/// Serves connections on `listener` until `shutdown` resolves, then stops
/// accepting and lets in-flight requests finish (bounded by `drain_timeout`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    queue: RenderQueue,
    links: Links,
    config: HttpConfig,
    shutdown: impl Future<Output = ()>,
) {
    let drain_timeout = config.drain_timeout;
    let header_timeout = config.header_timeout;
    let ctx = Arc::new(Ctx {
        queue,
        quarantine: links.quarantine,
        hangups: links.hangups,
        events: links.events,
        tracing: links.tracing,
        config,
        started: Instant::now(),
        seq: AtomicU64::new(0),
    });
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            // Shutdown first: a retiring worker must not take one more
            // connection that is ready at the same moment.
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        log::warn("accept failed", json!({"error": e.to_string()}));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let ctx = Arc::clone(&ctx);
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .keep_alive(true)
                    .serve_connection(
                        TokioIo::new(stream),
                        service_fn(move |req| handle(req, Arc::clone(&ctx))),
                    );
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        log::warn("connections still open after the drain timeout", json!({}));
    }
}

async fn handle(
    req: Request<Incoming>,
    ctx: Arc<Ctx>,
) -> std::result::Result<Response<Body>, Infallible> {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "w{}-{}",
                std::process::id(),
                ctx.seq.fetch_add(1, Ordering::Relaxed)
            )
        });
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut origin = Origin {
        started_at: request_start(&req),
        request_id: request_id.clone(),
        trace_id: None,
    };
    let span = match render_route(&method, &path) {
        Some(route) => ctx.tracing.request(
            req.headers(),
            RequestInfo {
                method: "POST",
                route,
                path: path.clone(),
                request_id: request_id.clone(),
                start: std::time::SystemTime::now(),
                queue_ms: origin
                    .started_at
                    .map(|t| (unix_now() - t).max(0.0) * 1000.0),
            },
        ),
        None => RequestSpan::default(),
    };
    origin.trace_id = span.trace_id();
    let trace_id = origin.trace_id.clone();
    let mut response = match route(req, &ctx, origin, &span).await {
        Ok(r) => r,
        Err(e) => {
            log::warn(
                "request rejected",
                json!({"request_id": request_id, "trace_id": trace_id, "method": method.as_str(), "path": path, "status": e.kind.status(), "error": e.context}),
            );
            error_response(&e)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    if let Some(v) = span
        .traceresponse()
        .and_then(|t| HeaderValue::from_str(&t).ok())
    {
        response.headers_mut().insert("traceresponse", v);
    }
    span.end(response.status().as_u16(), std::time::SystemTime::now());
    if let Some(v) = &ctx.config.bundle_header {
        response.headers_mut().insert("x-ssrd-bundle", v.clone());
    }
    // A retiring worker renders nothing more: close the connection so the
    // caller's next request (or its retry of a 503) opens a new one, which
    // the replacement process accepts.
    if ctx.queue.retiring() {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// The route template of a render request (what its span is named by).
fn render_route(method: &Method, path: &str) -> Option<&'static str> {
    match (method, path) {
        (&Method::POST, "/batch") => Some("/batch"),
        (&Method::POST, p) if p.starts_with("/render/") => Some("/render/{name}"),
        _ => None,
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

async fn route(
    req: Request<Incoming>,
    ctx: &Ctx,
    origin: Origin,
    span: &RequestSpan,
) -> Result<Response<Body>> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::POST, "/batch") => batch(req, ctx, origin, span).await,
        (&Method::POST, p) if p.starts_with("/render/") => {
            render_one(req, ctx, &p["/render/".len()..], origin, span).await
        }
        (&Method::GET, "/health") => Ok(json_response(
            StatusCode::OK,
            json!({"status": "ok"}).to_string(),
        )),
        (&Method::GET, "/stats") => Ok(json_response(StatusCode::OK, stats_json(ctx))),
        (m, "/batch") => Ok(method_not_allowed(m, &path, "POST")),
        (m, p) if p.starts_with("/render/") => Ok(method_not_allowed(m, p, "POST")),
        (m, "/health") | (m, "/stats") => Ok(method_not_allowed(m, &path, "GET")),
        (m, p) => Err(Error::new(
            ErrorKind::NotFound,
            format!("no route for {m} {p}; try POST /batch or POST /render/{{name}}"),
        )),
    }
}

/// nginx's X-Request-Start ("t=<unix seconds>"), for queue-time metrics.
fn request_start(req: &Request<Incoming>) -> Option<f64> {
    let v = req.headers().get("x-request-start")?.to_str().ok()?;
    let secs: f64 = v.trim().trim_start_matches("t=").parse().ok()?;
    secs.is_finite().then_some(secs)
}
