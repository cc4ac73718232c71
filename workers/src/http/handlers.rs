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
use crate::protocol::{self, Job, JobResult, JobSpec};
use crate::render::Origin;
use crate::slate;

use super::responses::{error_token, json_response, text_error, timing_headers};
use super::{Body, Ctx};

pub(super) async fn batch(
    req: Request<Incoming>,
    ctx: &Ctx,
    origin: Origin,
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
                    rendered.html =
                        markup::placement(&name, Some(&rendered.html), &props, &markup::new_id());
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

pub(super) async fn render_one(
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
    let with_markup = markup_query(req.uri().query()) == Some(true);
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
pub(super) async fn render(
    ctx: &Ctx,
    jobs: Vec<Job>,
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

pub(super) fn add_markup(result: &mut JobResult, name: &str, props: &serde_json::value::RawValue) {
    let html = result.outcome.as_ref().ok().map(|r| r.html.as_str());
    result.markup = Some(markup::placement(name, html, props, &markup::new_id()));
}

/// One log line per failed job (not per 404: unknown names are the
/// caller's business and can be frequent).
pub(super) fn log_failures(request_id: &str, results: &[protocol::JobResult]) {
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
                // The stack as the job's answer has it (source-mapped when
                // the bundle has a map), cut to the log's field size.
                let stack = e.stack.join("\n    ");
                log::emit(
                    LogEvent::JobFailed,
                    "job failed",
                    json!({"request_id": request_id, "token": r.token, "component": r.name, "status": e.status, "error": e.name, "message": e.message, "stack": stack, "repeated": repeated}),
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
}
