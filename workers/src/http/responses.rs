//! Building answers: JSON, timing headers, and every failure in one form
//! (status, `X-Ssrd-Error` kind, a `Name: what was wrong` text body).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};

use crate::error::{Error, ErrorKind};

use super::Body;

pub(super) fn method_not_allowed(
    method: &Method,
    path: &str,
    allow: &'static str,
) -> Response<Body> {
    let e = Error::new(
        ErrorKind::MethodNotAllowed,
        format!("{method} is not allowed on {path}; use {allow}"),
    );
    let mut r = error_response(&e);
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

/// Where a request's time went: `X-Ssrd-Queue-Ms` (waiting for the render
/// thread in this worker) and `X-Ssrd-Render-Ms`, and `Server-Timing` with
/// the whole queue (since nginx received it) and the render, which
/// browsers' and APM agents' timing views show.
pub(super) fn timing_headers(response: &mut Response<Body>, reply: &crate::render::Reply) {
    let (queue_ms, wait_ms, render_ms) = (reply.queue_ms, reply.wait_ms, reply.render_ms);
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("{queue_ms:.3}")) {
        h.insert("x-ssrd-queue-ms", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{render_ms:.3}")) {
        h.insert("x-ssrd-render-ms", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "queue;dur={wait_ms:.3}, render;dur={render_ms:.3}"
    )) {
        h.insert("server-timing", v);
    }
}

pub(super) fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A failed request: the status, the kind in `X-Ssrd-Error`, and a text
/// body `Name: what was wrong` (error.rs says why it is not JSON).
pub(super) fn text_error(status: StatusCode, name: &str, message: &str) -> Response<Body> {
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
pub(super) fn error_token(name: &str) -> HeaderValue {
    let token: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
        .take(64)
        .collect();
    HeaderValue::from_str(if token.is_empty() { "Error" } else { &token })
        .unwrap_or(HeaderValue::from_static("Error"))
}

pub(super) fn error_response(e: &Error) -> Response<Body> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_name_becomes_a_safe_bounded_header_token() {
        assert_eq!(error_token("RenderTimeout"), "RenderTimeout");
        assert_eq!(error_token("Bad Name\r\nX-Evil: 1"), "BadNameX-Evil:1");
        assert_eq!(error_token("\u{1F600}").to_str().unwrap(), "Error");
        assert_eq!(error_token(&"a".repeat(1000)).len(), 64);
    }

    #[test]
    fn a_failed_request_answers_its_status_kind_and_a_text_body() {
        let r = error_response(&Error::new(ErrorKind::NotFound, "no route"));
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(r.headers().get("x-ssrd-error").is_some());
    }
}
