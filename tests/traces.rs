//! Traces through the whole tier (nginx → haproxy → worker) to a real
//! OTLP/HTTP receiver started here, decoded with the OpenTelemetry
//! project's protobuf types: a caller's `traceparent` is continued, one
//! child span per job, a request without one starts a trace, and a
//! collector that is down or answering 500 costs a counter, not a render.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bundle, fixture, LogEvent, Tier};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// A caller's span, as OpenTelemetry's Faraday instrumentation sends it.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP receiver on a free loopback port: keeps every span it
/// is sent, answering with `status` (200, or 500 to play a broken one).
/// Each field is what a test asks it afterwards.
struct Receiver {
    port: u16,
    spans: Arc<Mutex<Vec<Span>>>,
    posts: Arc<Mutex<usize>>,
}

impl Receiver {
    fn start(status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(status));
        let posts = Arc::new(Mutex::new(0));
        let (s, st, p) = (spans.clone(), status.clone(), posts.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (s, st, p) = (s.clone(), st.clone(), p.clone());
                std::thread::spawn(move || serve(conn, &s, &st, &p));
            }
        });
        Receiver { port, spans, posts }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until spans of `trace` (hex) satisfy `done`, returning them.
    fn wait(&self, trace: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ours: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| hex(&s.trace_id) == trace)
                .cloned()
                .collect();
            if done(&ours) {
                return ours;
            }
            assert!(
                Instant::now() < deadline,
                "spans of {trace} never arrived; got {ours:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One keep-alive connection: each request's body decoded, then answered.
fn serve(conn: TcpStream, spans: &Mutex<Vec<Span>>, status: &AtomicU16, posts: &Mutex<usize>) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut writer = conn;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        *posts.lock().unwrap() += 1;
        let code = status.load(Ordering::SeqCst);
        if code == 200 {
            let request =
                ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
            let mut all = spans.lock().unwrap();
            for r in request.resource_spans {
                for s in r.scope_spans {
                    all.extend(s.spans);
                }
            }
        }
        let reason = if code == 200 {
            "OK"
        } else {
            "Internal Server Error"
        };
        let answer = format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        other => panic!("{key} on {}: {other:?}", span.name),
    }
}

fn int(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(AnyValue::IntValue(n)) => *n,
        other => panic!("{key} on {}: {other:?}", span.name),
    }
}

/// A tier whose workers export to `endpoint`, quickly (200 ms batches).
fn traced_tier(endpoint: &str) -> Tier {
    Tier::start_env(
        "up",
        1,
        &bundle("faults.js"),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_SERVICE_NAME", "ssrd-test"),
        ],
    )
}

const TWO_JOBS: &[u8] =
    br#"{"a":{"name":"HelloWorld","data":{"name":"trace"}},"b":{"name":"Throws","data":{}}}"#;

#[test]
fn a_callers_trace_continues_through_the_tier_with_one_span_per_job() {
    let receiver = Receiver::start(200);
    let mut tier = traced_tier(&receiver.endpoint());
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let r = common::post_with(
        tier.port,
        "/batch",
        TWO_JOBS,
        &[("traceparent", traceparent.as_str())],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The caller learns the trace and the request's span.
    let tr = r
        .header("traceresponse")
        .expect("traceresponse")
        .to_string();
    assert!(tr.starts_with(&format!("00-{TRACE}-")), "{tr}");
    let timing = r.header("server-timing").expect("server-timing");
    assert!(
        timing.contains("queue;dur=") && timing.contains("render;dur="),
        "{timing}"
    );

    let spans = receiver.wait(TRACE, |s| s.len() >= 3);
    assert_eq!(spans.len(), 3, "{spans:?}");
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("a server span");
    assert_eq!(
        hex(&server.parent_span_id),
        PARENT,
        "child of the caller's span"
    );
    assert_eq!(server.name, "POST /batch");
    assert_eq!(text(server, "http.request.method"), "POST");
    assert_eq!(text(server, "http.route"), "/batch");
    assert_eq!(int(server, "http.response.status_code"), 200);
    assert_eq!(tr, format!("00-{TRACE}-{}-01", hex(&server.span_id)));
    let jobs: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == server.span_id)
        .collect();
    assert_eq!(jobs.len(), 2, "one child per job: {spans:?}");
    let hello = jobs
        .iter()
        .find(|s| text(s, "ssrd.component") == "HelloWorld")
        .unwrap();
    assert_eq!(text(hello, "ssrd.outcome"), "ok");
    assert!(int(hello, "ssrd.html_bytes") > 0);
    assert!(hello.events.is_empty());
    let throws = jobs
        .iter()
        .find(|s| text(s, "ssrd.component") == "Throws")
        .unwrap();
    assert_eq!(text(throws, "ssrd.outcome"), "Error");
    assert_eq!(int(throws, "ssrd.html_bytes"), 0);
    let event = throws
        .events
        .iter()
        .find(|e| e.name == "exception")
        .expect("the error as a span event");
    assert!(event
        .attributes
        .iter()
        .any(|kv| kv.key == "exception.message"));
    // Job spans lie inside the request's.
    for job in &jobs {
        assert!(job.start_time_unix_nano >= server.start_time_unix_nano);
        assert!(job.end_time_unix_nano <= server.end_time_unix_nano);
    }

    // The log lines about the request carry its trace: the worker's
    // failed job and nginx's access log line.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let failed = tier.log_events(LogEvent::JobFailed);
        let access = tier
            .logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["msg"] == "request" && v["trace_id"] == TRACE)
            .count();
        if failed.iter().any(|v| v["trace_id"] == TRACE) && access == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "log lines without the trace id: {failed:?}\n{}",
            tier.log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_request_without_traceparent_starts_a_new_trace() {
    let receiver = Receiver::start(200);
    let tier = traced_tier(&receiver.endpoint());
    let r = common::post(tier.port, "/batch", TWO_JOBS);
    assert_eq!(r.status, 200);
    let tr = r
        .header("traceresponse")
        .expect("traceresponse")
        .to_string();
    let trace = tr.split('-').nth(1).unwrap().to_string();
    assert_ne!(trace, TRACE);
    let spans = receiver.wait(&trace, |s| s.len() >= 3);
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap();
    assert!(server.parent_span_id.is_empty(), "a root span");
}

#[test]
fn a_collector_down_or_failing_costs_a_counter_never_a_render() {
    // One collector answering 500, one not listening at all.
    let failing = Receiver::start(500);
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    for endpoint in [failing.endpoint(), closed] {
        let tier = traced_tier(&endpoint);
        let started = Instant::now();
        for _ in 0..50 {
            let r = common::post(tier.port, "/batch", TWO_JOBS);
            assert_eq!(r.status, 200, "{}", r.text());
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "50 requests took {:?}",
            started.elapsed()
        );
        // Heartbeats carry the count to the supervisor within seconds.
        common::wait_until(
            "ssrd_trace_export_failures_total > 0",
            common::TIMEOUT,
            || {
                let m = tier.metrics();
                m.lines()
                    .find_map(|l| l.strip_prefix("ssrd_trace_export_failures_total "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            },
        );
    }
    assert!(*failing.posts.lock().unwrap() > 0);
}

#[test]
fn the_hypernova_gem_with_a_trace_header_yields_one_connected_trace() {
    let Some(lib) = std::env::var_os("HYPERNOVA_RUBY_LIB") else {
        assert!(
            std::env::var_os("SSRD_REQUIRE_PEERS").is_none(),
            "SSRD_REQUIRE_PEERS is set but HYPERNOVA_RUBY_LIB is not"
        );
        eprintln!("skipped: HYPERNOVA_RUBY_LIB is not set (README, Test it)");
        return;
    };
    let receiver = Receiver::start(200);
    let tier = Tier::start_env(
        "up",
        1,
        &fixture("gem-app.js"),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    );
    let spec = serde_json::json!({
        "port": tier.port,
        "components": [{"name": "Greeting", "data": {"name": "trace"}}],
        "traceparent": format!("00-{TRACE}-{PARENT}-01"),
    });
    let out = common::gem_page(std::path::Path::new(&lib), &spec);
    assert_eq!(out["errors"], serde_json::json!([]), "{out}");
    let spans = receiver.wait(TRACE, |s| s.len() >= 2);
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap();
    assert_eq!(hex(&server.parent_span_id), PARENT);
    assert!(spans
        .iter()
        .any(|s| s.parent_span_id == server.span_id && text(s, "ssrd.component") == "Greeting"));
}

#[test]
fn the_config_files_endpoint_turns_tracing_on() {
    let receiver = Receiver::start(200);
    let endpoint = receiver.endpoint();
    let tier = Tier::start_env(
        "up",
        1,
        &bundle("faults.js"),
        &[
            "--otel-endpoint",
            &endpoint,
            "--otel-service-name",
            "from-config",
        ],
        &[("OTEL_BSP_SCHEDULE_DELAY", "200")],
    );
    let r = common::post_with(
        tier.port,
        "/batch",
        TWO_JOBS,
        &[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))],
    );
    assert_eq!(r.status, 200);
    let spans = receiver.wait(TRACE, |s| s.len() >= 3);
    assert_eq!(spans.len(), 3);
}

#[test]
fn a_request_that_crashes_its_worker_is_named_by_its_trace() {
    let receiver = Receiver::start(200);
    let mut tier = traced_tier(&receiver.endpoint());
    let port = tier.port;
    let slow = br#"{"0":{"name":"Slow","data":{"ms":3000}}}"#;
    let caller = std::thread::spawn(move || {
        common::post_with(
            port,
            "/batch",
            slow,
            &[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))],
        )
    });
    // Once it is rendering, its worker dies as a crash would.
    std::thread::sleep(Duration::from_millis(700));
    let pid = tier.worker_pids()["w1"];
    common::kill(pid, "ABRT");
    let crashed = tier.wait_log(LogEvent::CrashedInFlight, 0, Duration::from_secs(10));
    assert_eq!(crashed["trace_id"], TRACE, "{crashed}");
    assert!(crashed["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    let _ = caller.join();
}
