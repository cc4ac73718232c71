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

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;

use crate::defaults;
use crate::error::{Error, ErrorKind, Result};
use crate::events::{self, Event, EventSink, Outcome};
use crate::hangups::Hangups;
use crate::log;
use crate::markup;
use crate::procfs;
use crate::protocol::{self, Job, JobResult, JobSpec};
use crate::quarantine::Quarantine;
use crate::renderer::{Origin, RenderQueue};
use crate::slate;

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
    pub bundle_header: Option<HeaderValue>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: defaults::MAX_BODY_BYTES,
            max_batch_jobs: defaults::MAX_BATCH_JOBS as usize,
            wrap_placement: false,
            header_timeout: Duration::from_millis(defaults::HEADER_TIMEOUT_MS),
            body_timeout: Duration::from_millis(defaults::BODY_TIMEOUT_MS),
            drain_timeout: Duration::from_secs(30),
            settings: serde_json::Value::Null,
            bundle_header: None,
        }
    }
}

/// What every request handler can see.
struct Ctx {
    /// Hands work to the render thread.
    queue: RenderQueue,
    /// Requests refused unrendered (they crashed workers).
    quarantine: Quarantine,
    /// Callers that hung up, as the supervisor reports them.
    hangups: Hangups,
    /// Reports quarantined requests to the supervisor.
    events: EventSink,
    /// Limits.
    config: HttpConfig,
    /// For `/stats` uptime.
    started: Instant,
    /// Numbers requests that arrive without an X-Request-Id.
    seq: AtomicU64,
}

type Body = Full<Bytes>;

/// Serves connections on `listener` until `shutdown` resolves, then stops
/// accepting and lets in-flight requests finish (bounded by `drain_timeout`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    queue: RenderQueue,
    quarantine: Quarantine,
    hangups: Hangups,
    events: EventSink,
    config: HttpConfig,
    shutdown: impl Future<Output = ()>,
) {
    let drain_timeout = config.drain_timeout;
    let header_timeout = config.header_timeout;
    let ctx = Arc::new(Ctx {
        queue,
        quarantine,
        hangups,
        events,
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
    let origin = Origin {
        started_at: request_start(&req),
        request_id: request_id.clone(),
    };
    let mut response = match route(req, &ctx, origin).await {
        Ok(r) => r,
        Err(e) => {
            log::warn(
                "request rejected",
                json!({"request_id": request_id, "method": method.as_str(), "path": path, "status": e.kind.status(), "error": e.context}),
            );
            error_response(&e)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
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

async fn route(req: Request<Incoming>, ctx: &Ctx, origin: Origin) -> Result<Response<Body>> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::POST, "/batch") => batch(req, ctx, origin).await,
        (&Method::POST, p) if p.starts_with("/render/") => {
            render_one(req, ctx, &p["/render/".len()..], origin).await
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

async fn batch(req: Request<Incoming>, ctx: &Ctx, origin: Origin) -> Result<Response<Body>> {
    let asked = markup_query(&req);
    let with_markup = asked == Some(true);
    // A bundle that declared `markup: "placement"` gets its HTML wrapped,
    // for callers that paste `html` as it is (Hypernova's clients), unless
    // the caller asked for the markup apart (?markup=1) or bare HTML
    // (?markup=0).
    let wrap = asked.is_none() && ctx.config.wrap_placement;
    let body = crate::body::read(req, &ctx.config).await?;
    let hash = admit(ctx, "/batch", &body, &origin)?;
    let jobs = protocol::parse_batch_within(&body, ctx.config.max_batch_jobs)?;
    drop(body);
    // The props are needed again for the markup: keep a copy only then.
    let markup_props: Option<Vec<_>> = (with_markup || wrap).then(|| {
        jobs.iter()
            .map(|j| {
                j.spec
                    .as_ref()
                    .ok()
                    .map(|s| (s.name.clone(), s.props.clone()))
            })
            .collect()
    });
    let request_id = origin.request_id.clone();
    let mut reply = render(ctx, jobs, origin, hash).await?;
    log_failures(&request_id, &reply.results);
    if let Some(props) = markup_props {
        for (result, props) in reply.results.iter_mut().zip(props) {
            let Some((name, props)) = props else {
                continue;
            };
            if wrap {
                // Failed jobs stay as they are: the caller writes their
                // fallback (Hypernova's clients do).
                if let Ok(rendered) = &mut result.outcome {
                    let html = std::mem::take(&mut rendered.html);
                    rendered.html =
                        markup::placement(&name, Some(&html), &props, &markup::new_id());
                }
            } else {
                add_markup(result, &name, &props);
            }
        }
    }
    let text = protocol::batch_response(&reply.results);
    let mut response = json_response(StatusCode::OK, text);
    timing_headers(&mut response, reply.queue_ms, reply.render_ms);
    Ok(response)
}

async fn render_one(
    req: Request<Incoming>,
    ctx: &Ctx,
    raw_name: &str,
    origin: Origin,
) -> Result<Response<Body>> {
    let name = percent_encoding::percent_decode_str(raw_name)
        .decode_utf8()
        .map_err(|_| Error::bad_request("component name in the path is not valid UTF-8"))?
        .into_owned();
    if name.is_empty() || name.contains('/') {
        return Err(Error::bad_request(
            "expected POST /render/{name} with a component name",
        ));
    }
    let with_markup = wants_markup(&req);
    let body = crate::body::read(req, &ctx.config).await?;
    let hash = admit(ctx, &format!("/render/{name}"), &body, &origin)?;
    let props = protocol::parse_props(&body)?;
    drop(body);
    let markup_props = with_markup.then(|| props.clone());
    let job = Job {
        token: "0".into(),
        spec: Ok(JobSpec {
            name: name.clone(),
            props,
            metadata: None,
        }),
    };
    let request_id = origin.request_id.clone();
    let reply = render(ctx, vec![job], origin, hash).await?;
    log_failures(&request_id, &reply.results);
    let mut result =
        reply.results.into_iter().next().ok_or_else(|| {
            Error::new(ErrorKind::Internal, "the render thread returned no result")
        })?;
    if let Some(props) = markup_props {
        // Something to embed either way: the server HTML, or the fallback
        // for the browser to render (the header says why).
        add_markup(&mut result, &name, &props);
        let mut r = Response::new(Full::new(Bytes::from(result.markup.unwrap_or_default())));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        if let Err(e) = &result.outcome {
            r.headers_mut()
                .insert("x-ssrd-fallback", error_token(&e.name));
        }
        timing_headers(&mut r, reply.queue_ms, reply.render_ms);
        return Ok(r);
    }
    let mut response = match result.outcome {
        Ok(rendered) => {
            let mut r = Response::new(Full::new(Bytes::from(rendered.html)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Err(error) => {
            // One job is the whole request here: its failure is answered
            // like any failed request (status, X-Ssrd-Error, a sentence).
            let status =
                StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            text_error(status, &error.name, &error.message_text())
        }
    };
    timing_headers(&mut response, reply.queue_ms, reply.render_ms);
    Ok(response)
}

/// Renders on the render thread, unless the caller hangs up first (the
/// supervisor says so, hangups.rs): then the render is dropped, which stops
/// it, and the answer goes to no one.
async fn render(
    ctx: &Ctx,
    jobs: Vec<Job>,
    origin: Origin,
    hash: String,
) -> Result<crate::renderer::Reply> {
    let watch = ctx.hangups.watch(&origin.request_id);
    tokio::select! {
        reply = ctx.queue.render(jobs, origin, hash) => reply,
        () = watch.hung_up() => Err(Error::new(
            ErrorKind::Abandoned,
            "the caller hung up before the answer; the render was stopped",
        )),
    }
}

/// `?markup=1`: also answer Hypernova placement markup (see markup.rs).
fn wants_markup(req: &Request<Incoming>) -> bool {
    markup_query(req) == Some(true)
}

/// What the caller asked of the markup: `?markup=1` (true), `?markup=0`
/// (false), or nothing.
fn markup_query(req: &Request<Incoming>) -> Option<bool> {
    req.uri().query().and_then(|q| {
        q.split('&').find_map(|kv| match kv {
            "markup=1" | "markup=true" => Some(true),
            "markup=0" | "markup=false" => Some(false),
            _ => None,
        })
    })
}

fn add_markup(result: &mut JobResult, name: &str, props: &serde_json::value::RawValue) {
    let html = result.outcome.as_ref().ok().map(|r| r.html.as_str());
    result.markup = Some(markup::placement(name, html, props, &markup::new_id()));
}

/// nginx's X-Request-Start ("t=<unix seconds>"), for queue-time metrics.
fn request_start(req: &Request<Incoming>) -> Option<f64> {
    let v = req.headers().get("x-request-start")?.to_str().ok()?;
    let secs: f64 = v.trim().trim_start_matches("t=").parse().ok()?;
    secs.is_finite().then_some(secs)
}

/// One log line per failed job (not per 404: unknown names are the
/// caller's business and can be frequent).
fn log_failures(request_id: &str, results: &[protocol::JobResult]) {
    static REPEATS: std::sync::OnceLock<log::Repeats> = std::sync::OnceLock::new();
    let repeats = REPEATS.get_or_init(log::Repeats::new);
    for r in results {
        if let Err(e) = &r.outcome {
            if e.status >= 500 {
                // The same failure of the same component is written once
                // every 10 s, with how many were held back.
                let kind = format!(
                    "{}\u{0}{}\u{0}{}",
                    r.name.as_deref().unwrap_or(""),
                    e.name,
                    e.status
                );
                let Some(repeated) = repeats.admit(&kind) else {
                    continue;
                };
                log::warn(
                    "job failed",
                    json!({"request_id": request_id, "token": r.token, "component": r.name, "status": e.status, "error": e.name, "message": e.message, "repeated": repeated}),
                );
            }
        }
    }
}

/// Refuses a quarantined request; otherwise returns the hash it is known
/// by (written on the slate while it renders).
fn admit(ctx: &Ctx, route: &str, body: &[u8], origin: &Origin) -> Result<String> {
    let hash = slate::request_hash(route, body);
    if let Some(left) = ctx.quarantine.remaining(&hash) {
        ctx.events.emit(&Event::Quarantined(events::Quarantined {
            id: origin.request_id.clone(),
            hash,
        }));
        return Err(Error::new(
            ErrorKind::Quarantined,
            format!(
                "this request is quarantined for another {} s (it crashed two render workers in a \
                 row, or ran to its render deadline three times in a minute); render it on the \
                 client (fallback) and report it to the bundle's owners",
                left.as_secs() + 1
            ),
        ));
    }
    Ok(hash)
}

fn method_not_allowed(method: &Method, path: &str, allow: &'static str) -> Response<Body> {
    let e = Error::new(
        ErrorKind::MethodNotAllowed,
        format!("{method} is not allowed on {path}; use {allow}"),
    );
    let mut r = error_response(&e);
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

fn stats_json(ctx: &Ctx) -> String {
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
        "settings": ctx.config.settings,
    })
    .to_string()
}

fn timing_headers(response: &mut Response<Body>, queue_ms: f64, render_ms: f64) {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("{queue_ms:.3}")) {
        h.insert("x-ssrd-queue-ms", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{render_ms:.3}")) {
        h.insert("x-ssrd-render-ms", v);
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A failed request: the status, the kind in `X-Ssrd-Error`, and a text
/// body `Name: what was wrong` (error.rs says why it is not JSON).
fn text_error(status: StatusCode, name: &str, message: &str) -> Response<Body> {
    // The text starts with the kind as the header carries it.
    let kind = error_token(name);
    let shown = kind.to_str().unwrap_or("Error");
    let mut r = Response::new(Full::new(Bytes::from(format!("{shown}: {message}\n"))));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(crate::error::ERROR_HEADER, kind);
    r
}

/// An error's name as a header value: what it says must survive every hop
/// (nginx, haproxy) and fit any header buffer, whatever name a bundle gave
/// its error. Letters, digits and `_.-:` only, at most 64 of them; a name
/// with nothing left is "Error".
fn error_token(name: &str) -> HeaderValue {
    let token: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
        .take(64)
        .collect();
    HeaderValue::from_str(if token.is_empty() { "Error" } else { &token })
        .unwrap_or(HeaderValue::from_static("Error"))
}

fn error_response(e: &Error) -> Response<Body> {
    let status = StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = text_error(status, e.kind.name(), &e.context);
    if e.kind == ErrorKind::PayloadTooLarge {
        // What is left of an upload past the drain limit is not read.
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if e.kind == ErrorKind::MethodNotAllowed {
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
    }
    r
}
