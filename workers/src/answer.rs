//! A job's answer, from the JS value the host glue returns to the job's
//! outcome: the HTML (capped at the per-job limit, never empty), its meta
//! (a JSON object, checked here), or the bundle's error in Hypernova's
//! shape (every field capped, the status from a closed range).
//!
//! What is read here is only ever the host's own record (js/answers.js,
//! `settle` and `failure`): a string, or a null-prototype object of plain
//! strings and numbers. The bundle's objects never reach this module, and
//! anything else (a proxy, an object with a prototype) is refused without
//! being looked into, so reading an answer never runs JS: a render that
//! the watchdog ended cannot start running again here.

use deno_core::v8;
use serde_json::value::RawValue;

use crate::job::{Cause, Failure, JobError, Rendered};

/// Reads the glue's answer: a string (HTML), `{html, meta}` or
/// `{statusCode, error}` (see js/answers.js).
pub(crate) fn read<'s>(
    scope: &v8::PinScope<'s, '_>,
    value: v8::Local<'s, v8::Value>,
    max_bytes: usize,
) -> std::result::Result<Rendered, JobError> {
    if value.is_string() {
        return non_empty(Rendered {
            html: capped_string(scope, value, max_bytes)?,
            meta: None,
        });
    }
    let record = host_record(scope, value)?;
    if let Some(html) = field(scope, record, "html") {
        let html = capped_string(scope, html, max_bytes)?;
        let meta = match field(scope, record, "meta") {
            Some(meta) => Some(meta_object(capped_string(
                scope,
                meta,
                max_bytes.saturating_sub(html.len()),
            )?)?),
            None => None,
        };
        return non_empty(Rendered { html, meta });
    }
    let status = field(scope, record, "statusCode")
        .filter(|v| v.is_number())
        .and_then(|v| v.integer_value(scope))
        .map(job_status)
        .unwrap_or(500);
    // The glue clips the error's text; a record larger than this is not
    // the glue's doing and is not read.
    let error_json = field(scope, record, "error")
        .and_then(|v| capped_string(scope, v, max_bytes.min(MAX_ERROR_RECORD)).ok())
        .unwrap_or_default();
    let cause = Cause::Bundle { code: status };
    let error = match serde_json::from_str::<GlueError>(&error_json) {
        Ok(e) => JobError {
            name: e.name,
            kind: e.kind,
            message: e.message,
            stack: e.stack,
            cause,
        },
        Err(_) => JobError::new(
            cause,
            "Error",
            "the render failed with an error the worker could not read",
        ),
    };
    Err(error.capped())
}

/// The error record the glue makes of what a render threw (js/host.js,
/// `failure`): Hypernova's error fields, which the job's error takes.
#[derive(serde::Deserialize)]
struct GlueError {
    /// The error's class name.
    name: String,
    /// For a thrown non-Error value: what kind of value.
    #[serde(rename = "type", default)]
    kind: Option<String>,
    /// The message, or the thrown value itself.
    message: Box<serde_json::Value>,
    /// The stack, one frame a line.
    #[serde(default)]
    stack: Vec<String>,
}

/// The most text the glue's error record may hold (its fields are clipped
/// to 16 KiB each in js/answers.js).
const MAX_ERROR_RECORD: usize = 256 * 1024;

/// The status a failed job may carry: 400 to 599 as the bundle set it
/// (Hypernova passes `statusCode` through), anything else 500. Never an
/// informational, success or redirect status: `/render` answers with it.
pub(crate) fn job_status(n: i64) -> u16 {
    u16::try_from(n)
        .ok()
        .filter(|s| (400..=599).contains(s))
        .unwrap_or(500)
}

/// The glue's record: an object that is not a proxy and has no prototype.
/// Reading its properties can then run no JS (no getter on a prototype, no
/// trap).
fn host_record<'s>(
    scope: &v8::PinScope<'s, '_>,
    value: v8::Local<'s, v8::Value>,
) -> std::result::Result<v8::Local<'s, v8::Object>, JobError> {
    let refused = || {
        Failure::InternalError.error("render glue returned something other than its answer record")
    };
    if value.is_proxy() {
        return Err(refused());
    }
    let obj = v8::Local::<v8::Object>::try_from(value).map_err(|_| refused())?;
    match obj.get_prototype(scope) {
        Some(proto) if proto.is_null() => Ok(obj),
        _ => Err(refused()),
    }
}

/// A field of the record, when it holds a string or a number.
fn field<'s>(
    scope: &v8::PinScope<'s, '_>,
    record: v8::Local<'s, v8::Object>,
    name: &str,
) -> Option<v8::Local<'s, v8::Value>> {
    let key = v8::String::new(scope, name)?;
    record
        .get(scope, key.into())
        .filter(|v| v.is_string() || v.is_number())
}

/// Checks that meta is a JSON object: it is spliced into the answer as it
/// is, so anything else could add keys beside it.
fn meta_object(meta: String) -> std::result::Result<String, JobError> {
    let valid = serde_json::from_str::<Box<RawValue>>(&meta)
        .map(|raw| raw.get().starts_with('{'))
        .unwrap_or(false);
    if valid {
        Ok(meta)
    } else {
        Err(Failure::InternalError.error("the render's meta is not a JSON object"))
    }
}

/// Fails a render that produced no HTML, as Hypernova does (job.rs).
fn non_empty(rendered: Rendered) -> std::result::Result<Rendered, JobError> {
    if rendered.html.is_empty() {
        return Err(Failure::EmptyRender.error(
            "the component rendered no HTML (an empty string); like Hypernova, ssrd counts that \
             as a failed job, so the caller inserts fallback markup and the browser renders it",
        ));
    }
    Ok(rendered)
}

/// A JS string as Rust text, unless its UTF-8 form is over `max_bytes`: the
/// answer of one job is capped, so a render cannot make the worker copy
/// hundreds of megabytes into a response.
fn capped_string(
    scope: &v8::PinScope<'_, '_>,
    value: v8::Local<'_, v8::Value>,
    max_bytes: usize,
) -> std::result::Result<String, JobError> {
    let Ok(s) = v8::Local::<v8::String>::try_from(value) else {
        return Err(Failure::InternalError.error("render glue returned a non-string"));
    };
    // Each UTF-16 unit is 1 to 3 UTF-8 bytes: count exactly only when the
    // quick bounds cannot decide.
    let units = s.length();
    let too_big = units > max_bytes
        || (units.saturating_mul(3) > max_bytes && s.utf8_length(scope) > max_bytes);
    if too_big {
        return Err(Failure::AnswerTooLarge.error(format!(
            "the render returned more than the {max_bytes}-byte limit of one job's answer (--max-html-mb)"
        )));
    }
    Ok(s.to_rust_string_lossy(scope))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_jobs_status_is_4xx_or_5xx() {
        for (n, want) in [
            (404, 404),
            (400, 400),
            (599, 599),
            (101, 500),
            (200, 500),
            (302, 500),
            (600, 500),
            (-1, 500),
            (70_000, 500),
        ] {
            assert_eq!(super::job_status(n), want, "{n}");
        }
    }

    #[test]
    fn meta_must_be_one_json_object() {
        assert!(super::meta_object(r#"{"a":1}"#.into()).is_ok());
        for bad in [r#"{},"0":{"html":"x"}"#, "[1]", "\"text\"", "{", ""] {
            assert!(super::meta_object(bad.into()).is_err(), "{bad}");
        }
    }
}
