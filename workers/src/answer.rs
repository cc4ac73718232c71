//! A job's answer, from the JS value the host glue returns to the job's
//! outcome: the HTML (capped at the per-job limit, never empty), its meta,
//! or the bundle's error in Hypernova's shape.

use deno_core::v8;

use crate::job::{Failure, JobError, Rendered};

fn get_prop<'s>(
    scope: &v8::PinScope<'s, '_>,
    obj: v8::Local<'s, v8::Object>,
    name: &str,
) -> Option<v8::Local<'s, v8::Value>> {
    let key = v8::String::new(scope, name)?;
    obj.get(scope, key.into())
}

/// Reads the glue's answer: a string (HTML), `{html, meta}` or
/// `{statusCode, error}` (see js/host.js).
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
    let Ok(obj) = v8::Local::<v8::Object>::try_from(value) else {
        return Err(Failure::InternalError.error("render glue returned a non-object"));
    };
    if let Some(html) = get_prop(scope, obj, "html").filter(|v| v.is_string()) {
        let html = capped_string(scope, html, max_bytes)?;
        let meta = match get_prop(scope, obj, "meta").filter(|v| v.is_string()) {
            Some(meta) => Some(capped_string(scope, meta, max_bytes - html.len())?),
            None => None,
        };
        return non_empty(Rendered { html, meta });
    }
    let status = get_prop(scope, obj, "statusCode")
        .and_then(|v| v.integer_value(scope))
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or(500);
    let error_json = get_prop(scope, obj, "error")
        .filter(|v| v.is_string())
        .map(|v| v.to_rust_string_lossy(scope))
        .unwrap_or_default();
    let mut error = serde_json::from_str::<JobError>(&error_json).unwrap_or_else(|_| {
        JobError::new(
            500,
            "Error",
            format!("unreadable error from the bundle: {error_json}"),
        )
    });
    error.status = status;
    Err(error)
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
