//! What a render hands back is read only as the host's own plain data: a
//! thenable or a proxy cannot wedge the render thread or make it run bundle
//! code after its deadline, cannot forge another job's answer or the HTTP
//! status, and no field of an answer (errors and meta included) passes the
//! size limit. Driven with tests/fixtures/hostile.js on real workers and a
//! real tier (issue 16, items 1, 2 and 5).

mod common;

use std::time::{Duration, Instant};

use common::{fixture, Load, Tier, Worker};
use serde_json::{json, Value};

fn render(w: &Worker, name: &str, props: Value) -> Value {
    let v = w.batch(&json!({"0": {"name": name, "data": props}}));
    v["results"]["0"].clone()
}

#[test]
fn a_hung_render_ends_at_its_deadline_every_time_whatever_it_returned() {
    let w = Worker::start(&fixture("hostile.js"), &["--render-timeout-ms", "300"]);
    // Each of these loops forever once anything reads it: a thenable that
    // resolves (or rejects) with a looping proxy, a looping proxy returned
    // or thrown, a `then` getter that loops, and getters that answer a
    // string once and loop the second time they are read.
    for round in 0..3 {
        for name in [
            "ThenReturnsProxy",
            "ThenableResolvesProxy",
            "PromiseOfProxy",
            "PromiseOfProxyLater",
            "ThenableProxy",
            "ThenableProxyReject",
            "ProxyAnswer",
            "ThrowProxy",
            "ThenGetterLoops",
            "HtmlGetterFlips",
            "ThenableHtmlFlips",
        ] {
            let started = Instant::now();
            let r = render(&w, name, json!({}));
            let took = started.elapsed();
            assert!(
                took < Duration::from_millis(1500),
                "round {round}: {name} took {took:?}: {r}"
            );
            match name {
                // Read once, as a string: that is the answer.
                "HtmlGetterFlips" | "ThenableHtmlFlips" => {
                    assert_eq!(r["html"], "<p>once</p>", "{name}: {r}")
                }
                _ => assert_eq!(r["success"], false, "{name}: {r}"),
            }
            if matches!(name, "ThenableProxy" | "ThenGetterLoops") {
                assert_eq!(r["error"]["name"], "RenderTimeout", "{name}: {r}");
            }
            // The thread is free again: the next render is answered at once.
            let started = Instant::now();
            let ok = render(&w, "Hello", json!({}));
            assert_eq!(ok["html"], "<p>hello</p>", "after {name}: {ok}");
            assert!(
                started.elapsed() < Duration::from_millis(200),
                "after {name}"
            );
        }
    }
    let stats = w.get("/stats").json();
    assert_eq!(stats["busy"], false, "{stats}");
}

#[test]
fn a_thenable_cannot_forge_another_jobs_answer_or_the_status() {
    let w = Worker::start(&fixture("hostile.js"), &[]);
    // Job "1" returns a thenable whose `then` skips the host and hands back
    // a meta that would close its own result and add a second "0".
    let r = w.post(
        "/batch",
        json!({"0": {"name": "Hello"}, "1": {"name": "ForgeBatch"}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(!text.contains("FORGED"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["results"]["0"]["html"], "<p>hello</p>", "{text}");
    assert_eq!(v["results"]["1"]["success"], false, "{text}");
    assert_eq!(
        v["results"].as_object().unwrap().len(),
        2,
        "exactly the two jobs: {text}"
    );
    // A meta that is not an object fails the job instead of being spliced.
    let meta = render(&w, "ForgeMeta", json!({}));
    assert_eq!(meta["success"], false, "{meta}");
    // Statuses come from 400..=599 (else 500), whichever way the bundle
    // tries: a thenable's record, a resolved record, a thrown statusCode.
    for status in [101, 200, 204, 302, 0, 65_535] {
        for name in ["ForgeStatus", "ForgeStatusResolved", "ThrowStatus"] {
            let path = format!("/render/{name}");
            let r = w.post(&path, json!({"status": status}).to_string().as_bytes());
            assert_eq!(r.status, 500, "{name} {status}: {}", r.text());
            let j = render(&w, name, json!({"status": status}));
            assert_eq!(j["statusCode"], 500, "{name} {status}: {j}");
        }
    }
    // A status the bundle may choose still comes through.
    let r = w.post("/render/ThrowStatus", br#"{"status":404}"#);
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn errors_and_meta_count_against_the_answer_limit() {
    let w = Worker::start(
        &fixture("hostile.js"),
        &["--max-html-mb", "1", "--heap-limit-mb", "128"],
    );
    // 5 MB in a message, a name, a thrown string, or meta: the answer stays
    // small (an error's text is cut to 16 KiB per field) or fails
    // AnswerTooLarge, and /render likewise.
    for name in ["HugeError", "HugeErrorName", "HugeThrownString", "HugeMeta"] {
        let r = w.post(
            "/batch",
            json!({"0": {"name": name, "data": {"mb": 5}}})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(r.status, 200, "{name}");
        assert!(r.body.len() < 64 * 1024, "{name}: {} bytes", r.body.len());
        let v = r.json();
        assert_eq!(v["results"]["0"]["success"], false, "{name}");
        let single = w.post(&format!("/render/{name}"), br#"{"mb":5}"#);
        assert!(
            single.body.len() < 64 * 1024,
            "{name}: /render answered {} bytes",
            single.body.len()
        );
        // Header values are short and plain whatever the error's name.
        let header = single
            .header("x-ssrd-error")
            .unwrap_or_default()
            .to_string();
        assert!(header.len() <= 64, "{name}: {header}");
    }
    let meta = render(&w, "HugeMeta", json!({"mb": 5}));
    assert_eq!(meta["error"]["name"], "AnswerTooLarge", "{meta}");
    // The log line about each failure is bounded too.
    let longest = w.stderr_lines().iter().map(String::len).max().unwrap_or(0);
    assert!(longest < 8 * 1024, "a log line of {longest} bytes");
}

#[test]
fn under_the_tier_a_hung_render_is_quarantined_and_costs_healthy_requests_nothing() {
    let mut tier = Tier::start(2, &fixture("hostile.js"), &["--render-timeout-ms", "300"]);
    let load = Load::start(
        tier.port,
        json!({"0": {"name": "Hello"}}).to_string().into_bytes(),
        2,
    );
    let poison = json!({"0": {"name": "ThenableProxy"}}).to_string();
    let mut answers = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let r = common::post(tier.port, "/batch", poison.as_bytes());
        let kind = if r.status == 200 {
            String::new()
        } else {
            r.error_kind()
        };
        answers.push((r.status, kind, started.elapsed()));
        let text = r.text();
        if r.status == 200 {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                v["results"]["0"]["error"]["name"], "RenderTimeout",
                "{text}"
            );
        }
    }
    let stats = load.stop();
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert_eq!(stats.refused, 0, "{stats:?}");
    assert!(stats.ok > 50, "{stats:?}");
    eprintln!(
        "healthy: {} ok, p99 {:.1} ms; poison answers: {answers:?}",
        stats.ok,
        stats.p99_between(0.0, 1e9)
    );
    // Answered at its deadline each time until quarantined, then refused
    // at once, and never a worker's death.
    assert!(
        answers
            .iter()
            .all(|(_, _, took)| *took < Duration::from_secs(2)),
        "{answers:?}"
    );
    let refused = answers
        .iter()
        .filter(|(status, kind, _)| *status == 500 && kind == "Quarantined")
        .count();
    assert!(refused >= 15, "{answers:?}");
    let m = tier.metrics();
    assert!(m.contains("ssrd_quarantined_requests_total 1"), "{m}");
    assert!(
        !m.lines()
            .any(|l| l.starts_with("ssrd_worker_restarts_total") && !l.ends_with(" 0")),
        "no worker was restarted: {m}"
    );
    assert_eq!(tier.worker_pids().len(), 2);
}
