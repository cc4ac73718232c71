// Over 450 lines: one concern (the /batch wire format, both directions); 222 of them are its unit tests.
//! The Hypernova `/batch` wire format (see `docs/protocol.md`).
//!
//! Parsing accepts what Hypernova accepts and is strict about the rest: the
//! body is a JSON object of jobs, or an array of them (tokens "0", "1", …);
//! anything else fails the whole batch (400). One bad job (not an object, no
//! `name`) fails only itself and the other jobs still render. A job's `data`
//! may be any JSON value (an object, as props usually are, but also an
//! array, a string or a number): it is handed to the bundle as it is. Props (`data`) and `metadata` are kept as
//! raw JSON text: Rust never builds a tree of them, V8 parses them once, and
//! arbitrarily deep nesting inside them costs no Rust stack.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::job::{Cause, Failure, JobError, JobOutcome, Rendered};
use crate::render::{JobRequest, RenderOutcome, RenderRequest};

/// One parsed job of a batch, in request order.
#[derive(Debug)]
pub struct Job {
    /// The caller's key for this job; the result is stored under it.
    pub token: String,
    /// What to render, or why this job cannot be rendered.
    pub spec: JobRequest,
}

/// The outcome of one job, ready to be serialised into `results`.
#[derive(Debug)]
pub struct JobResult {
    /// The caller's key for this job.
    pub token: String,
    /// The component name as sent (null when the job had none).
    pub name: Option<String>,
    /// The HTML, or the error that prevented it.
    pub outcome: JobOutcome,
    /// Milliseconds spent on this job.
    pub duration_ms: f64,
    /// Hypernova placement markup for this job (server HTML, or the
    /// fallback), when the caller asked for it; sent as `meta.markup`.
    pub markup: Option<String>,
}

impl JobResult {
    /// The job's wire result: the render thread's outcome under the
    /// caller's token, with the placement markup if any.
    pub fn new(token: String, done: RenderOutcome, markup: Option<String>) -> JobResult {
        JobResult {
            token,
            name: done.name,
            outcome: done.outcome,
            duration_ms: done.duration_ms,
            markup,
        }
    }

    /// The job's `statusCode`: 200, or its failure's.
    pub fn status(&self) -> u16 {
        match &self.outcome {
            Ok(_) => 200,
            Err(e) => status_code(e),
        }
    }
}

/// A failed job's `statusCode`: the bundle's own for its errors, 400 for
/// a malformed job, 500 for every other failure the host decided.
pub fn status_code(e: &JobError) -> u16 {
    match e.cause {
        Cause::Bundle { code } => code,
        Cause::Host(Failure::BadRequest) => 400,
        Cause::Host(_) => 500,
    }
}

/// A job's error in Hypernova's shape (`{name, type, message, stack}`,
/// `type` only for a thrown non-Error value).
#[derive(Serialize)]
pub struct ErrorWire<'a> {
    /// The error's class name.
    name: &'a str,
    /// What kind of value was thrown, when not an Error.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    /// The message (or the thrown value).
    message: &'a serde_json::Value,
    /// The stack, a frame a line.
    stack: &'a [String],
}

impl<'a> From<&'a JobError> for ErrorWire<'a> {
    fn from(e: &'a JobError) -> ErrorWire<'a> {
        ErrorWire {
            name: &e.name,
            kind: e.kind.as_deref(),
            message: &e.message,
            stack: &e.stack,
        }
    }
}

/// Splits parsed jobs into their tokens and what the render thread takes,
/// both in request order.
pub fn split_tokens(jobs: Vec<Job>) -> (Vec<String>, Vec<JobRequest>) {
    jobs.into_iter().map(|j| (j.token, j.spec)).unzip()
}

/// Parses a `/batch` body into jobs, in the order the caller wrote them.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Job>> {
    parse_batch_within(body, usize::MAX)
}

/// As [`parse_batch`], refusing a batch of more than `max_jobs` jobs (400):
/// one request cannot hold a worker for the time of a hundred thousand
/// tiny renders (`--max-batch-jobs`). Parsing stops at the first job past
/// the cap.
pub fn parse_batch_within(body: &[u8], max_jobs: usize) -> Result<Vec<Job>> {
    let text = utf8(body)?;
    if text.trim().is_empty() {
        return Err(Error::bad_request(
            "request body is empty; expected a JSON object mapping job tokens to jobs",
        ));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let batch = BatchSeed { max_jobs }.deserialize(&mut de).map_err(|e| {
        if e.to_string().starts_with(TOO_MANY) {
            Error::bad_request(format!(
                "the batch has more than {max_jobs} jobs, the most one request may hold \
                     (max_batch_jobs / --max-batch-jobs); split it"
            ))
        } else {
            json_error(e)
        }
    })?;
    de.end().map_err(json_error)?;
    Ok(batch.0)
}

/// Parses the body of `POST /render/{name}`: the props object itself.
pub fn parse_props(body: &[u8]) -> Result<Box<RawValue>> {
    let text = utf8(body)?;
    if text.trim().is_empty() {
        return Ok(empty_props());
    }
    let raw: Box<RawValue> = serde_json::from_str(text).map_err(json_error)?;
    Ok(check_props(raw))
}

fn utf8(body: &[u8]) -> Result<&str> {
    std::str::from_utf8(body).map_err(|e| {
        Error::bad_request(format!(
            "request body is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}

fn json_error(e: serde_json::Error) -> Error {
    let msg = e.to_string();
    if msg.contains("recursion limit exceeded") {
        Error::bad_request(format!(
            "JSON nested too deeply outside a job's data/metadata ({msg})"
        ))
    } else {
        Error::bad_request(format!("request body is not valid JSON: {msg}"))
    }
}

fn empty_props() -> Box<RawValue> {
    RawValue::from_string("{}".to_string()).expect("{} is valid JSON")
}

/// Props are any JSON value, as in Hypernova; `null` means no props.
fn check_props(raw: Box<RawValue>) -> Box<RawValue> {
    if raw.get() == "null" {
        empty_props()
    } else {
        raw
    }
}

/// The batch envelope: an object of jobs kept in document order, or an
/// array of jobs (Hypernova's server takes one too: tokens are the indexes).
struct BatchWire(Vec<Job>);

/// Marks the error of a batch over its job cap.
const TOO_MANY: &str = "ssrd: too many jobs";

/// Deserializes a [`BatchWire`] of at most `max_jobs` jobs.
struct BatchSeed {
    max_jobs: usize,
}

impl<'de> DeserializeSeed<'de> for BatchSeed {
    type Value = BatchWire;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<BatchWire, D::Error> {
        d.deserialize_any(BatchVisitor {
            max_jobs: self.max_jobs,
        })
    }
}

struct BatchVisitor {
    /// The most jobs accepted.
    max_jobs: usize,
}

impl BatchVisitor {
    /// Refuses one more job when `jobs` is already at the cap.
    fn check<E: de::Error>(&self, jobs: &[Job]) -> std::result::Result<(), E> {
        if jobs.len() >= self.max_jobs {
            return Err(E::custom(TOO_MANY));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for BatchVisitor {
    type Value = BatchWire;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object mapping job tokens to jobs (or an array of jobs)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<BatchWire, A::Error> {
        let mut jobs: Vec<Job> = Vec::new();
        while let Some(entry) = seq.next_element::<JobWire>()? {
            self.check::<A::Error>(&jobs)?;
            let token = jobs.len().to_string();
            jobs.push(Job {
                spec: entry.into_spec(&token),
                token,
            });
        }
        Ok(BatchWire(jobs))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<BatchWire, A::Error> {
        let mut jobs: Vec<Job> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(token) = map.next_key::<String>()? {
            let entry: JobWire = map.next_value()?;
            self.check::<A::Error>(&jobs)?;
            if !seen.insert(token.clone()) {
                return Err(de::Error::custom(format!(
                    "job token {token:?} appears twice"
                )));
            }
            jobs.push(Job {
                spec: entry.into_spec(&token),
                token,
            });
        }
        Ok(BatchWire(jobs))
    }
}

/// One job as sent; any JSON value is accepted here so a bad job fails alone.
enum JobWire {
    Object {
        name: Option<serde_json::Value>,
        data: Option<Box<RawValue>>,
        metadata: Option<Box<RawValue>>,
    },
    NotAnObject(&'static str),
}

impl JobWire {
    fn into_spec(self, token: &str) -> JobRequest {
        let (name, data, metadata) = match self {
            JobWire::NotAnObject(kind) => {
                return Err(Failure::BadRequest.error(format!(
                    "job {token:?} must be an object {{name, data, metadata}}; got {kind}"
                )))
            }
            JobWire::Object {
                name,
                data,
                metadata,
            } => (name, data, metadata),
        };
        let name = match name {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            Some(serde_json::Value::String(_)) => {
                return Err(
                    Failure::BadRequest.error(format!("job {token:?} has an empty \"name\""))
                )
            }
            Some(_) => {
                return Err(Failure::BadRequest.error(format!(
                    "job {token:?}: \"name\" must be a string naming a registered component"
                )))
            }
            None => {
                return Err(Failure::BadRequest.error(format!(
                    "job {token:?} has no \"name\" (the registered component to render)"
                )))
            }
        };
        let props = data.map(check_props).unwrap_or_else(empty_props);
        let metadata = metadata.filter(|m| m.get() != "null");
        Ok(RenderRequest {
            name,
            props,
            metadata,
        })
    }
}

impl<'de> Deserialize<'de> for JobWire {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(JobVisitor)
    }
}

struct JobVisitor;

impl<'de> Visitor<'de> for JobVisitor {
    type Value = JobWire;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a job object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<JobWire, A::Error> {
        let (mut name, mut data, mut metadata) = (None, None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "name" => name = Some(map.next_value::<serde_json::Value>()?),
                "data" => data = Some(map.next_value::<Box<RawValue>>()?),
                "metadata" => metadata = Some(map.next_value::<Box<RawValue>>()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(JobWire::Object {
            name,
            data,
            metadata,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<JobWire, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JobWire::NotAnObject("an array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<JobWire, E> {
        Ok(JobWire::NotAnObject("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<JobWire, E> {
        Ok(JobWire::NotAnObject("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<JobWire, E> {
        Ok(JobWire::NotAnObject("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<JobWire, E> {
        Ok(JobWire::NotAnObject("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<JobWire, E> {
        Ok(JobWire::NotAnObject("a number"))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<JobWire, E> {
        Ok(JobWire::NotAnObject("null"))
    }
}

/// Serialises a batch response exactly as protocol.md describes.
pub fn batch_response(results: &[JobResult]) -> String {
    let mut out = String::with_capacity(
        64 + results
            .iter()
            .map(|r| r.outcome.as_ref().map(|h| h.html.len()).unwrap_or(256) + 160)
            .sum::<usize>(),
    );
    out.push_str(r#"{"success":true,"error":null,"results":{"#);
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, &r.token);
        out.push(':');
        push_job_result(&mut out, r);
    }
    out.push_str("}}");
    out
}

fn push_job_result(out: &mut String, r: &JobResult) {
    out.push_str(r#"{"name":"#);
    match &r.name {
        Some(n) => push_json_string(out, n),
        None => out.push_str("null"),
    }
    out.push_str(r#","html":"#);
    match &r.outcome {
        Ok(rendered) => push_json_string(out, &rendered.html),
        Err(_) => out.push_str("null"),
    }
    out.push_str(r#","meta":"#);
    let meta = match &r.outcome {
        Ok(Rendered { meta: Some(m), .. }) => m.trim(),
        _ => "{}",
    };
    match &r.markup {
        None => out.push_str(meta),
        Some(markup) => {
            // Prepend "markup" to the bundle's meta object.
            out.push_str(r#"{"markup":"#);
            push_json_string(out, markup);
            let rest = meta.strip_prefix('{').unwrap_or("}").trim_start();
            if !rest.starts_with('}') {
                out.push(',');
            }
            out.push_str(rest);
        }
    }
    out.push_str(r#","duration":"#);
    out.push_str(&format_duration(r.duration_ms));
    out.push_str(r#","statusCode":"#);
    out.push_str(&r.status().to_string());
    match &r.outcome {
        Ok(_) => out.push_str(r#","success":true,"error":null}"#),
        Err(e) => {
            out.push_str(r#","success":false,"error":"#);
            let wire = ErrorWire::from(e);
            out.push_str(&serde_json::to_string(&wire).unwrap_or_else(|_| "null".into()));
            out.push('}');
        }
    }
}

/// Durations are floats in milliseconds, rounded to microseconds.
fn format_duration(ms: f64) -> String {
    let rounded = (ms * 1000.0).round() / 1000.0;
    if rounded.is_finite() {
        format!("{rounded}")
    } else {
        "0".into()
    }
}

fn push_json_string(out: &mut String, s: &str) {
    // serde_json's escaping of a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(job: &Job) -> &RenderRequest {
        job.spec.as_ref().expect("valid job")
    }

    #[test]
    fn jobs_keep_document_order_and_raw_props() {
        let jobs = parse_batch(
            br#"{"b":{"name":"B","data":{"x":[1,2]}},"a":{"name":"A","data":null,"metadata":{"m":1}}}"#,
        )
        .unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].token, "b");
        assert_eq!(spec(&jobs[0]).props.get(), r#"{"x":[1,2]}"#);
        assert_eq!(spec(&jobs[1]).props.get(), "{}");
        assert_eq!(
            spec(&jobs[1]).metadata.as_ref().unwrap().get(),
            r#"{"m":1}"#
        );
    }

    #[test]
    fn envelope_errors_fail_the_batch() {
        for (body, needle) in [
            (&b"5"[..], "expected a JSON object"),
            (b"\"jobs\"", "expected a JSON object"),
            (b"{\"0\":", "not valid JSON"),
            (b"", "empty"),
            (b"\xff\xfe", "not valid UTF-8"),
            (br#"{"0":{"name":"A"},"0":{"name":"B"}}"#, "appears twice"),
            (br#"{"0":{"name":"A"}} trailing"#, "not valid JSON"),
        ] {
            let err = parse_batch(body).unwrap_err();
            assert_eq!(err.kind.status(), 400, "{body:?}");
            assert!(err.context.contains(needle), "{body:?}: {}", err.context);
        }
    }

    #[test]
    fn a_batch_over_its_job_cap_is_refused_whole() {
        let jobs = |n: usize| {
            let body: Vec<String> = (0..n).map(|i| format!(r#""{i}":{{"name":"A"}}"#)).collect();
            format!("{{{}}}", body.join(","))
        };
        assert_eq!(parse_batch_within(jobs(3).as_bytes(), 3).unwrap().len(), 3);
        let err = parse_batch_within(jobs(4).as_bytes(), 3).unwrap_err();
        assert_eq!(err.kind.status(), 400);
        assert!(err.context.contains("more than 3 jobs"), "{}", err.context);
        let array = format!("[{}]", [r#"{"name":"A"}"#; 4].join(","));
        assert!(parse_batch_within(array.as_bytes(), 3).is_err());
        assert_eq!(parse_batch_within(array.as_bytes(), 4).unwrap().len(), 4);
    }

    #[test]
    fn bad_jobs_fail_alone() {
        let jobs = parse_batch(
            br#"{"0":"x","1":{"data":{}},"2":{"name":5},"3":[{"name":"A"}],"4":{"name":"A"}}"#,
        )
        .unwrap();
        let msgs: Vec<String> = jobs
            .iter()
            .take(4)
            .map(|j| j.spec.as_ref().unwrap_err().message_text())
            .collect();
        assert!(msgs[0].contains("must be an object"), "{}", msgs[0]);
        assert!(msgs[1].contains("has no \"name\""), "{}", msgs[1]);
        assert!(msgs[2].contains("must be a string"), "{}", msgs[2]);
        assert!(msgs[3].contains("must be an object"), "{}", msgs[3]);
        assert!(jobs[4].spec.is_ok());
        assert!(jobs
            .iter()
            .take(4)
            .all(|j| status_code(j.spec.as_ref().unwrap_err()) == 400));
    }

    #[test]
    fn data_of_any_json_type_and_array_bodies_are_accepted_as_in_hypernova() {
        let jobs = parse_batch(
            br#"[{"name":"A","data":"text"},{"name":"B","data":[1,2]},{"name":"C","data":7},{"name":"D","data":null},{"name":"E"}]"#,
        )
        .unwrap();
        let tokens: Vec<&str> = jobs.iter().map(|j| j.token.as_str()).collect();
        assert_eq!(tokens, ["0", "1", "2", "3", "4"]);
        let props: Vec<&str> = jobs.iter().map(|j| spec(j).props.get()).collect();
        assert_eq!(props, [r#""text""#, "[1,2]", "7", "{}", "{}"]);
        assert_eq!(
            parse_props(br#""just text""#).unwrap().get(),
            r#""just text""#
        );
        assert_eq!(parse_batch(b"[]").unwrap().len(), 0);
    }

    #[test]
    fn deep_nesting_inside_data_costs_no_stack_and_outside_is_rejected() {
        let depth = 100_000;
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let inside = format!(r#"{{"0":{{"name":"A","data":{{"deep":{deep}}}}}}}"#);
        let jobs = parse_batch(inside.as_bytes()).unwrap();
        assert!(spec(&jobs[0]).props.get().len() > 2 * depth);

        let outside = format!(r#"{{"0":{{"name":{deep}}}}}"#);
        let err = parse_batch(outside.as_bytes()).unwrap_err();
        assert!(err.context.contains("nested too deeply"), "{}", err.context);
        // A deep array is a batch (as in Hypernova) whose one job fails.
        let jobs = parse_batch(deep.as_bytes()).unwrap();
        assert_eq!(status_code(jobs[0].spec.as_ref().unwrap_err()), 400);
    }

    #[test]
    fn response_has_protocol_shapes() {
        let results = vec![
            JobResult {
                token: "0".into(),
                name: Some("A".into()),
                outcome: Ok(Rendered {
                    html: "<p>\u{2028}</p>".into(),
                    meta: None,
                }),
                duration_ms: 1.23456,
                markup: None,
            },
            JobResult {
                token: "1".into(),
                name: None,
                outcome: Err(JobError::new(
                    Cause::Bundle { code: 404 },
                    "ReferenceError",
                    "nope",
                )),
                duration_ms: 0.1,
                markup: Some("<div>m</div>".into()),
            },
        ];
        let v: serde_json::Value = serde_json::from_str(&batch_response(&results)).unwrap();
        assert_eq!(v["success"], true);
        assert_eq!(v["error"], serde_json::Value::Null);
        let ok = &v["results"]["0"];
        assert_eq!(ok["html"], "<p>\u{2028}</p>");
        assert_eq!(ok["meta"], serde_json::json!({}));
        assert_eq!(ok["duration"], 1.235);
        assert_eq!(ok["statusCode"], 200);
        assert_eq!(ok["success"], true);
        let bad = &v["results"]["1"];
        assert_eq!(bad["name"], serde_json::Value::Null);
        assert_eq!(bad["html"], serde_json::Value::Null);
        assert_eq!(bad["statusCode"], 404);
        assert_eq!(bad["success"], false);
        assert_eq!(bad["error"]["name"], "ReferenceError");
        assert!(bad["error"].get("type").is_none());
        assert_eq!(bad["meta"], serde_json::json!({"markup": "<div>m</div>"}));
    }

    #[test]
    fn errors_go_out_in_hypernova_shape_with_their_status() {
        let e = Failure::RenderTimeout.error("ran past 1000 ms");
        assert_eq!(
            serde_json::to_value(ErrorWire::from(&e)).unwrap(),
            serde_json::json!({"name": "RenderTimeout", "message": "ran past 1000 ms",
                               "stack": ["RenderTimeout: ran past 1000 ms"]})
        );
        assert_eq!(status_code(&e), 500);
        assert_eq!(status_code(&Failure::BadRequest.error("x")), 400);
        let thrown = JobError {
            kind: Some("number".into()),
            message: Box::new(serde_json::json!(7)),
            ..JobError::new(Cause::Bundle { code: 418 }, "Error", "")
        };
        let v = serde_json::to_value(ErrorWire::from(&thrown)).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["message"].as_i64()),
            (Some("number"), Some(7))
        );
        assert_eq!(status_code(&thrown), 418);
    }

    #[test]
    fn a_wire_result_keeps_the_token_and_takes_the_outcome() {
        let done = RenderOutcome {
            name: Some("A".into()),
            props: None,
            outcome: Err(Failure::BadRequest.error("bad")),
            duration_ms: 2.0,
            started_at: std::time::SystemTime::now(),
            cache: None,
        };
        let r = JobResult::new("t".into(), done, Some("<div></div>".into()));
        assert_eq!((r.token.as_str(), r.name.as_deref()), ("t", Some("A")));
        assert_eq!((r.status(), r.duration_ms), (400, 2.0));
        assert_eq!(r.markup.as_deref(), Some("<div></div>"));
        let (tokens, jobs) = split_tokens(parse_batch(br#"{"x":{"name":"A"},"y":5}"#).unwrap());
        assert_eq!(tokens, ["x", "y"]);
        assert!(jobs[0].is_ok() && jobs[1].is_err());
    }

    #[test]
    fn markup_joins_the_bundles_meta() {
        let result = |meta: Option<&str>| JobResult {
            token: "0".into(),
            name: Some("A".into()),
            outcome: Ok(Rendered {
                html: "<p/>".into(),
                meta: meta.map(str::to_string),
            }),
            duration_ms: 1.0,
            markup: Some("<div></div>".into()),
        };
        for (meta, expected) in [
            (None, serde_json::json!({"markup": "<div></div>"})),
            (Some("{}"), serde_json::json!({"markup": "<div></div>"})),
            (
                Some(r#"{"a":1}"#),
                serde_json::json!({"markup": "<div></div>", "a": 1}),
            ),
        ] {
            let v: serde_json::Value =
                serde_json::from_str(&batch_response(&[result(meta)])).unwrap();
            assert_eq!(v["results"]["0"]["meta"], expected, "{meta:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any bytes at all: parsing answers Ok or a 400, never panics.
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Err(e) = parse_batch(&body) {
                proptest::prop_assert_eq!(e.kind.status(), 400);
            }
        }

        /// JSON-ish text built from the protocol's own pieces.
        #[test]
        fn protocol_shaped_text_never_panics(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("{".to_string()), proptest::strategy::Just("}".to_string()),
                    proptest::strategy::Just("[".to_string()), proptest::strategy::Just("]".to_string()),
                    proptest::strategy::Just(",".to_string()), proptest::strategy::Just(":".to_string()),
                    proptest::strategy::Just("\"name\"".to_string()), proptest::strategy::Just("\"data\"".to_string()),
                    proptest::strategy::Just("\"metadata\"".to_string()), proptest::strategy::Just("\"0\"".to_string()),
                    proptest::strategy::Just("null".to_string()), proptest::strategy::Just("1e999".to_string()),
                    proptest::strategy::Just("\"\\ud800\"".to_string()), proptest::strategy::Just("\"</script>\"".to_string()),
                ],
                0..64,
            )
        ) {
            let body = parts.concat();
            match parse_batch(body.as_bytes()) {
                Ok(jobs) => {
                    let results: Vec<JobResult> = jobs.into_iter().map(|j| JobResult {
                        token: j.token,
                        name: j.spec.as_ref().ok().map(|s| s.name.clone()),
                        outcome: Err(j.spec.err().unwrap_or_else(|| JobError::new(Cause::Bundle { code: 500 }, "Error", "x"))),
                        duration_ms: 0.0,
                        markup: None,
                    }).collect();
                    let text = batch_response(&results);
                    proptest::prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
                }
                Err(e) => proptest::prop_assert_eq!(e.kind.status(), 400),
            }
        }
    }
}
