//! The two render routes: `POST /batch` (Hypernova's protocol) and
//! `POST /render/{name}` (one component, HTML back). Both refuse a
//! quarantined request unrendered, hand the jobs to the render thread
//! (dropped if the caller hangs up first) and log failed jobs, capped.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::error::{Error, ErrorKind, Result};
use crate::events::{self, Event};
use crate::log::{self, LogEvent};
use crate::markup;
use crate::protocol::{self, JobResult};
use crate::render::{JobRequest, Origin, RenderOutcome, RenderRequest};
use crate::slate;
use crate::trace::{JobInfo, RequestSpan};

use super::responses::{error_token, json_response, text_error, timing_headers};
use super::{Body, Ctx};

pub(super) async fn batch(
    req: Request<Incoming>,
    ctx: &Ctx,
    origin: Origin,
    span: &RequestSpan,
) -> Result<Response<Body>> {
    let asked = markup_query(req.uri().query());
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
    let (tokens, requests) = protocol::split_tokens(jobs);
    let request_id = origin.request_id.clone();
    let mut reply = render(ctx, requests, origin, hash).await?;
    trace_jobs(span, &reply.results);
    let results: Vec<JobResult> = tokens
        .into_iter()
        .zip(std::mem::take(&mut reply.results))
        .map(|(token, done)| wire_result(token, done, wrap, with_markup, ctx.config.dev_errors))
        .collect();
    log_failures(&request_id, span, &results);
    let text = protocol::batch_response(&results);
    let mut response = json_response(StatusCode::OK, text);
    timing_headers(&mut response, &reply);
    Ok(response)
}

pub(super) async fn render_one(
    req: Request<Incoming>,
    ctx: &Ctx,
    raw_name: &str,
    origin: Origin,
    span: &RequestSpan,
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
    let with_markup = markup_query(req.uri().query()) == Some(true);
    let body = crate::body::read(req, &ctx.config).await?;
    let hash = admit(ctx, &format!("/render/{name}"), &body, &origin)?;
    let props = protocol::parse_props(&body)?;
    drop(body);
    let job = RenderRequest {
        name: name.clone(),
        props,
        metadata: None,
    };
    let request_id = origin.request_id.clone();
    let mut reply = render(ctx, vec![Ok(job)], origin, hash).await?;
    trace_jobs(span, &reply.results);
    let done = std::mem::take(&mut reply.results)
        .into_iter()
        .next()
        .ok_or_else(|| Error::new(ErrorKind::Internal, "the render thread returned no result"))?;
    let markup = match &done.props {
        // Something to embed either way: the server HTML, or the fallback
        // for the browser to render (the header says why).
        Some(props) if with_markup => Some(placement(&done, &name, props, ctx.config.dev_errors)),
        _ => None,
    };
    let result = JobResult::new("0".into(), done, markup);
    log_failures(&request_id, span, std::slice::from_ref(&result));
    if let Some(markup) = result.markup {
        let mut r = Response::new(Full::new(Bytes::from(markup)));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        if let Err(e) = &result.outcome {
            r.headers_mut()
                .insert("x-ssrd-fallback", error_token(&e.name));
        }
        timing_headers(&mut r, &reply);
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
            let status = StatusCode::from_u16(protocol::status_code(&error))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            text_error(status, &error.name, &error.message_text())
        }
    };
    timing_headers(&mut response, &reply);
    Ok(response)
}

/// Renders on the render thread, unless the caller hangs up first (the
/// supervisor says so, hangups.rs): then the render is dropped, which stops
/// it, and the answer goes to no one.
pub(super) async fn render(
    ctx: &Ctx,
    jobs: Vec<JobRequest>,
    origin: Origin,
    hash: String,
) -> Result<crate::render::Reply> {
    let watch = ctx.hangups.watch(&origin.request_id);
    tokio::select! {
        reply = ctx.queue.render(jobs, origin, hash) => reply,
        () = watch.hung_up() => Err(Error::new(
            ErrorKind::Abandoned,
            "the caller hung up before the answer; the render was stopped",
        )),
    }
}

fn markup_query(query: Option<&str>) -> Option<bool> {
    query.and_then(|q| {
        q.split('&').find_map(|kv| match kv {
            "markup=1" | "markup=true" => Some(true),
            "markup=0" | "markup=false" => Some(false),
            _ => None,
        })
    })
}

/// One job's wire result: under `wrap` its HTML inside its placement
/// markup; with `with_markup` the markup apart (`meta.markup`). The props
/// the render thread handed back go into the markup, never copied.
fn wire_result(
    token: String,
    mut done: RenderOutcome,
    wrap: bool,
    with_markup: bool,
    dev: bool,
) -> JobResult {
    let markup = match (&done.name, &done.props) {
        // Failed jobs stay as they are: the caller writes their fallback
        // (Hypernova's clients do).
        (Some(name), Some(props)) if wrap => {
            if let Ok(rendered) = &mut done.outcome {
                rendered.html =
                    markup::placement(name, Some(&rendered.html), props, &markup::new_id());
            }
            None
        }
        (Some(name), Some(props)) if with_markup => Some(placement(&done, name, props, dev)),
        _ => None,
    };
    JobResult::new(token, done, markup)
}

/// A job's placement markup: its server HTML, or the fallback (an empty
/// element) when it failed, with its props for the browser; in development
/// mode (`dev`) a failed job's error is shown above its fallback.
fn placement(
    done: &RenderOutcome,
    name: &str,
    props: &serde_json::value::RawValue,
    dev: bool,
) -> String {
    let html = done.outcome.as_ref().ok().map(|r| r.html.as_str());
    let markup = markup::placement(name, html, props, &markup::new_id());
    match &done.outcome {
        Err(e) if dev => {
            markup::dev_error(name, &e.name, &e.message_text(), &e.stack.join("\n    ")) + &markup
        }
        _ => markup,
    }
}

/// One span per job, a child of the request's (no-op when tracing is off).
fn trace_jobs(span: &RequestSpan, results: &[RenderOutcome]) {
    if span.trace_id().is_none() {
        return;
    }
    for done in results {
        let end = done.started_at + std::time::Duration::from_secs_f64(done.duration_ms / 1000.0);
        let (outcome, html_bytes, message, stack) = match &done.outcome {
            Ok(rendered) => ("ok", rendered.html.len(), None, None),
            Err(e) => (
                e.name.as_str(),
                0,
                Some(e.message_text()),
                Some(e.stack.join("\n    ")),
            ),
        };
        span.job(JobInfo {
            component: done.name.as_deref().unwrap_or(""),
            outcome,
            start: done.started_at,
            end,
            html_bytes,
            error: message.as_deref().zip(stack.as_deref()),
            cache: done.cache.map(|c| c.label()),
        });
    }
}

/// One log line per failed job (not per 404: unknown names are the
/// caller's business and can be frequent), with the request's trace.
pub(super) fn log_failures(request_id: &str, span: &RequestSpan, results: &[protocol::JobResult]) {
    static REPEATS: std::sync::OnceLock<log::Repeats> = std::sync::OnceLock::new();
    let repeats = REPEATS.get_or_init(log::Repeats::new);
    for r in results {
        if let Err(e) = &r.outcome {
            let status = protocol::status_code(e);
            if status >= 500 {
                // The same failure of the same component is written once
                // every 10 s, with how many were held back.
                let kind = format!(
                    "{}\u{0}{}\u{0}{}",
                    r.name.as_deref().unwrap_or(""),
                    e.name,
                    status
                );
                let Some(repeated) = repeats.admit(&kind) else {
                    continue;
                };
                // The stack as the job's answer has it (source-mapped when
                // the bundle has a map), cut to the log's field size.
                let stack = e.stack.join("\n    ");
                log::emit(
                    LogEvent::JobFailed,
                    "job failed",
                    json!({"request_id": request_id, "trace_id": span.trace_id(), "token": r.token, "component": r.name, "status": status, "error": e.name, "message": e.message, "stack": stack, "repeated": repeated}),
                );
            }
        }
    }
}

/// Refuses a quarantined request; otherwise returns the hash it is known
/// by (written on the slate while it renders).
pub(super) fn admit(ctx: &Ctx, route: &str, body: &[u8], origin: &Origin) -> Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::job::{Failure, Rendered};

    fn done(ok: bool) -> RenderOutcome {
        RenderOutcome {
            name: Some("My-Comp".into()),
            props: Some(serde_json::value::RawValue::from_string(r#"{"a":1}"#.into()).unwrap()),
            outcome: if ok {
                Ok(Rendered {
                    html: "<p>x</p>".into(),
                    meta: None,
                })
            } else {
                Err(Failure::RenderTimeout.error("late"))
            },
            duration_ms: 1.0,
            started_at: std::time::SystemTime::now(),
            cache: None,
        }
    }

    #[test]
    fn wrapping_puts_rendered_html_in_its_placement_and_leaves_failures() {
        let r = wire_result("0".into(), done(true), true, false, false);
        let html = &r.outcome.as_ref().unwrap().html;
        assert!(
            html.starts_with(r#"<div data-hypernova-key="MyComp""#),
            "{html}"
        );
        assert!(html.contains("<p>x</p></div>") && html.contains(r#"<!--{"a":1}-->"#));
        assert_eq!(r.markup, None);
        let r = wire_result("0".into(), done(false), true, false, false);
        assert!(r.outcome.is_err() && r.markup.is_none());
    }

    #[test]
    fn asked_markup_comes_apart_with_the_fallback_for_a_failure() {
        let r = wire_result("0".into(), done(true), false, true, false);
        assert_eq!(r.outcome.as_ref().unwrap().html, "<p>x</p>");
        assert!(r.markup.unwrap().contains("<p>x</p></div>"));
        let r = wire_result("0".into(), done(false), false, true, false);
        let markup = r.markup.unwrap();
        assert!(markup.contains(r#""></div>"#), "empty fallback: {markup}");
        let plain = wire_result("0".into(), done(true), false, false, false);
        assert_eq!(plain.markup, None);
        let malformed = RenderOutcome {
            name: None,
            props: None,
            ..done(false)
        };
        assert_eq!(
            wire_result("1".into(), malformed, false, true, false).markup,
            None
        );
    }

    #[test]
    fn the_markup_query_is_read_among_other_parameters() {
        assert_eq!(markup_query(None), None);
        assert_eq!(markup_query(Some("a=b")), None);
        assert_eq!(markup_query(Some("markup=1")), Some(true));
        assert_eq!(markup_query(Some("x=1&markup=false")), Some(false));
        assert_eq!(
            markup_query(Some("markup=0&markup=1")),
            Some(false),
            "the first wins"
        );
        assert_eq!(
            markup_query(Some("markup=yes")),
            None,
            "only 0/1/true/false"
        );
    }

    #[test]
    fn only_development_mode_shows_a_failed_jobs_error_in_its_fallback() {
        let dev = wire_result("0".into(), done(false), false, true, true);
        let markup = dev.markup.unwrap();
        assert!(markup.starts_with("<div data-ssrd-dev-error"), "{markup}");
        assert!(markup.contains("late"), "{markup}");
        assert!(markup.contains("data-hypernova-key=\"MyComp\""), "{markup}");
        let prod = wire_result("0".into(), done(false), false, true, false);
        assert!(!prod.markup.unwrap().contains("data-ssrd-dev-error"));
        // A rendered job is never annotated.
        let ok = wire_result("0".into(), done(true), false, true, true);
        assert!(!ok.markup.unwrap().contains("data-ssrd-dev-error"));
    }
}
