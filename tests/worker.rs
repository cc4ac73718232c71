//! End-to-end tests of `ssrd worker`: a real process on a free loopback port,
//! real HTTP, the real faults bundle from js-bundle/dist.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{bundle, fixture, LogEvent, Worker};
use serde_json::{json, Value};

#[test]
fn batch_answers_with_the_protocol_shapes() {
    let w = Worker::faults(&[]);
    let v = w.batch(&json!({
        "0": {"name": "HelloWorld", "data": {"name": "Loft"}, "metadata": {"x": 1}},
        "1": {"name": "NoSuchComponent", "data": {"query": ""}},
        "2": {"name": "Throws", "data": {}},
        "3": {"name": "ThrowsValue", "data": {}},
        "4": {"name": "Deferred", "data": {"ms": 5}},
        "5": {"name": "WithMeta", "data": {"k": "v"}},
    }));
    assert_eq!(v["success"], true);
    assert_eq!(v["error"], Value::Null);
    let results = v["results"].as_object().unwrap();
    let tokens: Vec<&str> = results.keys().map(String::as_str).collect();
    assert_eq!(
        tokens,
        ["0", "1", "2", "3", "4", "5"],
        "exactly the request's tokens, in order"
    );
    for (token, r) in results {
        assert!(
            r["duration"].is_f64() || r["duration"].is_u64(),
            "{token}: duration is a number"
        );
        assert_eq!(
            r["success"],
            Value::Bool(!r["html"].is_null()),
            "{token}: success is html !== null"
        );
        assert!(r["meta"].is_object(), "{token}: meta is an object");
    }

    let ok = &v["results"]["0"];
    assert_eq!(ok["name"], "HelloWorld");
    assert_eq!(ok["statusCode"], 200);
    assert_eq!(ok["error"], Value::Null);
    assert!(ok["html"].as_str().unwrap().contains("Loft"), "{ok}");

    let missing = &v["results"]["1"];
    assert_eq!(missing["statusCode"], 404);
    assert_eq!(missing["html"], Value::Null);
    assert_eq!(missing["error"]["name"], "ReferenceError");
    assert_eq!(
        missing["error"]["message"],
        "Component \"NoSuchComponent\" not registered"
    );
    assert!(missing["error"].get("type").is_none());

    let thrown = &v["results"]["2"];
    assert_eq!(thrown["statusCode"], 500);
    assert_eq!(thrown["error"]["name"], "Error");
    assert_eq!(
        thrown["error"]["message"],
        "Throws: this component always fails"
    );
    let stack = thrown["error"]["stack"].as_array().unwrap();
    assert_eq!(stack[0], "Error: Throws: this component always fails");
    assert!(
        stack.len() > 1
            && stack[1..]
                .iter()
                .all(|l| l.as_str().unwrap().starts_with("at ")),
        "{stack:?}"
    );

    let value = &v["results"]["3"];
    assert_eq!(value["statusCode"], 500);
    assert_eq!(
        value["error"],
        json!({"name": "Error", "type": "Error", "message": "a thrown string, not an Error", "stack": [""]})
    );

    assert_eq!(
        v["results"]["4"]["html"], "<p>deferred</p>",
        "async renders resolve"
    );
    assert_eq!(
        v["results"]["5"]["meta"],
        json!({"seen": {"k": "v"}}),
        "meta comes back"
    );
}

#[test]
fn real_components_render_with_intl_and_escaped_props() {
    let w = Worker::start(&bundle("server.js"), &[]);
    let r = w.post("/batch", &common::bench_fixture("batch-large.json"));
    assert_eq!(r.status, 200);
    let v = r.json();
    let html = v["results"]["1"]["html"]
        .as_str()
        .expect("SearchResults rendered");
    assert!(html.len() > 200_000, "a heavy page: {} bytes", html.len());
    assert_eq!(html.matches("class=\"listing-card\"").count(), 100);
    // de-DE euro prices come from Intl with the ICU data compiled in.
    assert!(html.contains("\u{a0}€"), "Intl formats EUR for de-DE");

    let nasty = "</script><script>window.__pwned=1</script> </script \u{2028}\u{2029}";
    // The component's own HTML (the placement markup around it is checked
    // in a_placement_bundle_answers_batch_html_in_hypernovas_markup).
    let body = json!({"0": {"name": "HelloWorld", "data": {"name": nasty}}});
    let v = w
        .post("/batch?markup=0", body.to_string().as_bytes())
        .json();
    let html = v["results"]["0"]["html"].as_str().unwrap();
    assert!(
        !html.contains("</script"),
        "props are escaped as text: {html}"
    );
    assert!(html.contains("&lt;/script&gt;"), "{html}");
}

/// A worker that goes idle gives back what its renders grew (render_loop.rs,
/// IDLE_RELEASE: a full GC and malloc_trim after 250 ms without a request),
/// and renders the same afterwards. Measured: ~100 MiB at the peak of ten
/// large batches, ~50 MiB a second later; without the release, ~100 MiB
/// both.
#[test]
fn an_idle_worker_gives_back_the_memory_its_renders_grew() {
    let w = Worker::start(&bundle("server.js"), &[]);
    let body = common::bench_fixture("batch-large.json");
    let mut peak = 0;
    let mut html = String::new();
    for _ in 0..10 {
        let r = w.post("/batch", &body);
        assert_eq!(r.status, 200);
        html = r.json()["results"]["1"]["html"]
            .as_str()
            .unwrap()
            .to_string();
        peak = peak.max(common::rss_bytes(w.pid()));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut idle = peak;
    while Instant::now() < deadline && peak - idle.min(peak) < 24 << 20 {
        std::thread::sleep(Duration::from_millis(100));
        idle = common::rss_bytes(w.pid());
    }
    assert!(
        idle + (24 << 20) <= peak,
        "RSS {} MiB at the load's peak, still {} MiB once idle",
        peak >> 20,
        idle >> 20
    );
    let r = w.post("/batch", &body);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["results"]["1"]["html"].as_str().unwrap().len(),
        html.len(),
        "the same page after the release"
    );
}

#[test]
fn runaway_render_times_out_and_the_same_process_serves_the_next_request() {
    let w = Worker::faults(&["--render-timeout-ms", "300"]);
    let started = Instant::now();
    let v = w.batch(&json!({"0": {"name": "Runaway", "data": {}}, "1": {"name": "HelloWorld"}}));
    let elapsed = started.elapsed();
    let r = &v["results"]["0"];
    assert_eq!(r["statusCode"], 500);
    assert_eq!(r["error"]["name"], "RenderTimeout");
    assert!(r["html"].is_null());
    let duration = r["duration"].as_f64().unwrap();
    assert!(
        (300.0..300.0 + 200.0).contains(&duration),
        "stopped {duration} ms after start, deadline 300"
    );
    assert!(
        elapsed < Duration::from_millis(1500),
        "answered in {elapsed:?}"
    );
    assert_eq!(
        v["results"]["1"]["statusCode"], 200,
        "the next job in the batch still renders"
    );

    let again = w.batch(&json!({"0": {"name": "HelloWorld", "data": {"name": "after"}}}));
    assert!(again["results"]["0"]["html"]
        .as_str()
        .unwrap()
        .contains("after"));
    let stats = w.get("/stats").json();
    assert_eq!(stats["pid"], w.pid(), "same process");
    assert_eq!(stats["jobs"]["timeout"], 1);
}

#[test]
fn async_render_past_its_deadline_and_never_settling_promises_fail_cleanly() {
    let w = Worker::start(&fixture("web-apis.js"), &["--render-timeout-ms", "200"]);
    // With nothing else pending, a promise that cannot settle is seen at once.
    let v = w.batch(&json!({
        "0": {"name": "Never"},
        "1": {"name": "Timer", "data": {"ms": 5000}},
        "2": {"name": "BadReturn"},
        "3": {"name": "Timer", "data": {"ms": 1}},
        "4": {"name": "Never"},
    }));
    assert_eq!(v["results"]["0"]["statusCode"], 500);
    assert!(
        v["results"]["0"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("never settles"),
        "{v}"
    );
    assert!(
        v["results"]["0"]["duration"].as_f64().unwrap() < 100.0,
        "{v}"
    );
    assert_eq!(v["results"]["1"]["error"]["name"], "RenderTimeout");
    assert_eq!(v["results"]["2"]["error"]["name"], "TypeError");
    assert_eq!(v["results"]["3"]["html"], "timer fired");
    // Job 1's timer was cancelled when job 1 ended: nothing is pending when
    // job 4's promise cannot settle, so that too is seen at once.
    assert!(
        v["results"]["4"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("never settles"),
        "{v}"
    );
}

#[test]
fn heap_exhaustion_is_answered_then_the_worker_exits_75() {
    let mut w = Worker::faults(&["--heap-limit-mb", "64"]);
    // One keep-alive connection, as haproxy would reuse.
    let mut conn = TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    let mut answered = None;
    for i in 0..40 {
        let r = common::post_on(
            &mut conn,
            "/batch",
            json!({"0": {"name": "Leak", "data": {"mb": 8}}, "1": {"name": "HelloWorld"}})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        let v = r.json();
        if v["results"]["0"]["statusCode"] == 500 {
            answered = Some((v, r));
            break;
        }
        assert_eq!(r.header("connection"), None, "kept alive while healthy");
    }
    let (v, r) = answered.expect("the leak reached the heap limit within 40 requests");
    // The last answer closes its connection, so the caller's next request
    // opens a new one and waits for the replacement process.
    assert_eq!(r.header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(conn.read_to_end(&mut rest).ok(), Some(0), "closed after it");
    assert_eq!(v["results"]["0"]["error"]["name"], "HeapLimitExceeded");
    assert_eq!(
        v["results"]["1"]["error"]["name"], "HeapLimitExceeded",
        "later jobs are not attempted"
    );
    assert_eq!(
        w.wait_exit(),
        Some(75),
        "documented exit code for heap exhaustion"
    );
}

#[test]
fn one_render_at_a_time_even_with_concurrent_connections() {
    let w = Worker::faults(&[]);
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let port = w.port;
            std::thread::spawn(move || {
                common::post(
                    port,
                    "/batch",
                    json!({"0": {"name": "Deferred", "data": {"ms": 100}}})
                        .to_string()
                        .as_bytes(),
                )
            })
        })
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["results"]["0"]["html"], "<p>deferred</p>");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "renders were serialised"
    );
    let v = w.batch(&json!({"0": {"name": "Concurrency"}}));
    assert_eq!(
        v["results"]["0"]["html"], "1",
        "never more than one render in flight"
    );
}

#[test]
fn single_component_endpoint() {
    let w = Worker::faults(&[]);
    let r = w.post("/render/HelloWorld", br#"{"name":"Single"}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.text().contains("Single"));
    assert!(r.header("x-ssrd-render-ms").is_some());

    let empty = w.post("/render/HelloWorld", b"");
    assert_eq!(empty.status, 200, "no body means no props");

    let missing = w.post("/render/Nope", b"{}");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_kind(), "ReferenceError");

    let thrown = w.post("/render/Throws", b"{}");
    assert_eq!(thrown.status, 500);
    assert_eq!(
        thrown.text(),
        "Error: Throws: this component always fails\n"
    );

    let bad = w.post("/render/HelloWorld", b"{not json");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_kind(), "BadRequest");
    assert!(bad.text().contains("not valid JSON"), "{}", bad.text());

    let encoded = w.post("/render/Hello%57orld", b"{}");
    assert_eq!(encoded.status, 200, "percent-encoded names are decoded");
}

#[test]
fn bad_input_gets_clear_errors_and_never_kills_the_worker() {
    let mut w = Worker::faults(&["--max-body-bytes", "1048576", "--body-timeout-ms", "500"]);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed JSON",
            b"{\"0\": {\"name\": ".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "not an object",
            b"12".to_vec(),
            400,
            "expected a JSON object",
        ),
        (
            "a string",
            b"\"hello\"".to_vec(),
            400,
            "expected a JSON object",
        ),
        ("empty body", Vec::new(), 400, "empty"),
        (
            "non-UTF-8",
            b"{\"0\":{\"name\":\"\xff\xfe\"}}".to_vec(),
            400,
            "UTF-8",
        ),
        ("over the limit", vec![b' '; 2 * 1024 * 1024], 413, "limit"),
        (
            "deep name",
            format!(
                "{{\"0\":{{\"name\":{}{}}}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            )
            .into_bytes(),
            400,
            "nested too deeply",
        ),
    ];
    for (what, body, status, needle) in cases {
        let r = w.post("/batch", &body);
        assert_eq!(r.status, status, "{what}: {}", r.text());
        let kind = r.error_kind();
        assert_eq!(
            kind,
            if status == 413 {
                "PayloadTooLarge"
            } else {
                "BadRequest"
            }
        );
        assert!(r.text().contains(needle), "{what}: {}", r.text());
    }

    // An array body is a batch (as in Hypernova); 100k-deep nesting in it
    // costs no stack and fails only that job.
    let deep = format!("[{}{}]", "[".repeat(100_000), "]".repeat(100_000));
    let r = w.post("/batch", deep.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"]["0"]["statusCode"], 400);

    // Bad jobs fail alone; good jobs beside them render.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!(
        r#"{{"a":{{"data":{{}}}},"b":"str","c":{{"name":"HelloWorld","data":[1]}},"d":{{"name":"HelloWorld","data":{{"deep":{deep}}}}},"e":{{"name":"HelloWorld","data":{{"name":"ok\u2028</script>"}}}}}}"#
    );
    let r = w.post("/batch", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["results"]["c"]["statusCode"], 200,
        "data of any JSON type is passed on, as in Hypernova"
    );
    for token in ["a", "b"] {
        assert_eq!(
            v["results"][token]["statusCode"], 400,
            "{token}: {}",
            v["results"][token]
        );
        assert_eq!(v["results"][token]["success"], false);
        assert!(v["results"][token]["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("\"{token}\"")));
    }
    assert!(v["results"]["a"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no \"name\""));
    assert_eq!(
        v["results"]["d"]["statusCode"], 200,
        "100k-deep props are just props"
    );
    assert_eq!(v["results"]["e"]["statusCode"], 200);
    assert!(v["results"]["e"]["html"]
        .as_str()
        .unwrap()
        .contains("ok\u{2028}&lt;/script&gt;"));

    // Routing errors come in the same form.
    let r = w.get("/nope");
    assert_eq!(r.status, 404);
    assert_eq!(r.error_kind(), "NotFound");
    assert!(r.text().contains("POST /batch"));
    let r = w.get("/batch");
    assert_eq!(r.status, 405);
    assert_eq!(r.error_kind(), "MethodNotAllowed");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = w.post("/health", b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));

    // Garbage that is not HTTP at all.
    let r = common::request(w.port, b"\x00\x01\x02 not http\r\n\r\n");
    assert_eq!(r.status, 400);

    // A slow client (slowloris) gets 408 after the body timeout.
    let mut s = TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    s.set_read_timeout(Some(common::TIMEOUT)).unwrap();
    s.write_all(b"POST /batch HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"0\":")
        .unwrap();
    let started = Instant::now();
    let r = common::read_response(&mut s);
    assert_eq!(r.status, 408);
    assert_eq!(r.error_kind(), "RequestTimeout");
    assert!(started.elapsed() < Duration::from_secs(5));

    assert!(w.alive(), "the worker survived all of it");
    assert_eq!(w.get("/health").status, 200);
    let v = w.batch(&json!({"0": {"name": "HelloWorld"}}));
    assert_eq!(v["results"]["0"]["statusCode"], 200);
}

#[test]
fn random_bodies_never_get_anything_but_protocol_answers() {
    // A small fuzz of the whole request path against the live process:
    // mutated batch bodies, answered 200 with a JSON batch or 4xx in the
    // failed-request form, always.
    let mut w = Worker::faults(&[]);
    let seed_body = common::bench_fixture("batch-small.json");
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for i in 0..300 {
        let mut body = seed_body.clone();
        let cut = (next() as usize) % body.len();
        match i % 4 {
            0 => body.truncate(cut),
            1 => body[cut] = next() as u8,
            2 => body.insert(cut, b"{[\"\\,:}]"[(next() % 8) as usize]),
            _ => {
                let n = (next() % 64) as usize;
                body = (0..n).map(|_| next() as u8).collect();
            }
        }
        let r = w.post("/batch", &body);
        assert!(
            r.status == 200 || (400..500).contains(&r.status),
            "case {i}: status {}",
            r.status
        );
        if r.status == 200 {
            assert!(r.json()["success"].is_boolean(), "case {i}");
        } else {
            r.error_kind();
        }
    }
    assert!(w.alive());
}

/// The worker's Intl comes from ICU 77 (CLDR 47, deno_core_icudata 0.77):
/// this pins it, so a dependency upgrade that changes what pages print
/// fails here and docs/worker.md ("Intl and ICU") gets updated with it.
#[test]
fn intl_formats_with_the_documented_icu_data() {
    let w = Worker::start(&common::fixture("icu.js"), &[]);
    let render = |locale: &str| -> Value {
        let v = w.batch(&json!({"0": {"name": "Intl", "data": {
            "locale": locale, "timeZone": "America/New_York"}}}));
        serde_json::from_str(v["results"]["0"]["html"].as_str().unwrap()).unwrap()
    };
    // ICU 78 (Node 20.20's) prints "AM 10:30 미 동부 표준시".
    assert_eq!(render("ko-KR")["formatted"], "오전 10:30 북미 동부 표준시");
    assert_eq!(
        render("en-US")["formatted"],
        "10:30 AM Eastern Standard Time"
    );
}

/// The ICU data is Chromium's common set, not ICU's full one: these
/// languages (which Node's full ICU has) are missing, and `Intl` formats
/// them as en-US. docs/worker.md lists the same ones; a V8 or ICU upgrade
/// that changes the set fails here.
#[test]
fn the_icu_data_lacks_the_documented_languages() {
    const PROBE: &str = "af am ar as az be bg bn bs ca cs cy da de el en es et eu fa fi fil fr ga \
        gl gu he hi hr hu hy id is it ja jv ka kk km kn ko ky lo lt lv mk ml mn mr ms my nb ne nl \
        or pa pl ps pt ro ru sd si sk sl so sq sr sv sw ta te th tk tr uk ur uz vi yo zh zu";
    const MISSING: &str =
        "as be cy eu ga gl hy is jv ka kk km ky lo mk mn my ne or ps si so sq tk yo zu";
    let probe: Vec<&str> = PROBE.split_whitespace().collect();
    let w = Worker::start(&common::fixture("icu.js"), &[]);
    let v = w.batch(&json!({"0": {"name": "Intl", "data": {
        "locale": "en-US", "timeZone": "UTC", "probe": probe}}}));
    let answer: Value = serde_json::from_str(v["results"]["0"]["html"].as_str().unwrap()).unwrap();
    let supported: Vec<&str> = answer["supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    // Some are there: the probe itself works.
    assert!(
        supported.contains(&"ja") && supported.contains(&"ar"),
        "{supported:?}"
    );
    let missing: Vec<&str> = probe
        .iter()
        .copied()
        .filter(|l| !supported.contains(l))
        .collect();
    assert_eq!(missing.join(" "), MISSING);
}

#[test]
fn web_apis_work_with_and_without_a_snapshot() {
    let dir = common::tempdir("webapis");
    let snap = dir.join("web-apis.snap");
    let snap_arg = snap.to_str().unwrap().to_string();
    for (mode, extra) in [
        ("none", vec![]),
        ("built", vec!["--snapshot", snap_arg.as_str()]),
        ("loaded", vec!["--snapshot", snap_arg.as_str()]),
    ] {
        let w = Worker::start(&fixture("web-apis.js"), &extra);
        assert_eq!(w.ready.snapshot, mode);
        let v = w.batch(&json!({
            "0": {"name": "WebApis"}, "1": {"name": "Timer"}, "2": {"name": "Microtask"}, "3": {"name": "Channel"},
        }));
        let checks: Value =
            serde_json::from_str(v["results"]["0"]["html"].as_str().expect("rendered")).unwrap();
        for (api, ok) in checks.as_object().unwrap() {
            assert_eq!(ok, true, "{mode}: {api}");
        }
        assert_eq!(v["results"]["1"]["html"], "timer fired", "{mode}");
        assert_eq!(v["results"]["2"]["html"], "microtask ran", "{mode}");
        assert_eq!(v["results"]["3"]["html"], "message ok", "{mode}");
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            w.stderr_lines()
                .iter()
                .any(|l| l.contains("web-apis bundle says hi")),
            "{mode}: console.log goes to stderr"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn snapshot_boots_render_the_same_html() {
    let dir = common::tempdir("snap");
    let snap = dir.join("server.snap");
    let plain = Worker::start(&bundle("server.js"), &[]);
    let body = common::bench_fixture("batch-small.json");
    // Bare HTML: the placement markup carries a fresh id every time.
    let expected = plain.post("/batch?markup=0", &body).json();
    drop(plain);
    for mode in ["built", "loaded"] {
        let w = Worker::start(
            &bundle("server.js"),
            &["--snapshot", snap.to_str().unwrap()],
        );
        assert_eq!(w.ready.snapshot, mode);
        let got = w.post("/batch?markup=0", &body).json();
        for token in ["0", "1", "2", "3"] {
            assert_eq!(
                got["results"][token]["html"], expected["results"][token]["html"],
                "{mode} {token}"
            );
        }
    }
    // A snapshot of another bundle is rebuilt, never loaded.
    let w = Worker::faults(&["--snapshot", snap.to_str().unwrap()]);
    assert_eq!(w.ready.snapshot, "built");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn broken_bundles_exit_3_with_a_message() {
    for (file, needle) in [
        ("no-contract.js", "did not set globalThis.ssrd"),
        ("throws-at-load.js", "this bundle fails while loading"),
        ("does-not-exist.js", "reading"),
    ] {
        let out = std::process::Command::new(common::bin())
            .args(["worker", "--port", "0", "--bundle"])
            .arg(fixture(file))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{file}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{file}: {stderr}");
        assert!(out.stdout.is_empty(), "{file}: no ready line");
    }
}

#[test]
fn port_in_use_fails_at_once() {
    let w = Worker::faults(&[]);
    let out = std::process::Command::new(common::bin())
        .args(["worker", "--port", &w.port.to_string(), "--bundle"])
        .arg(bundle("faults.js"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
}

#[test]
fn unknown_v8_flags_are_refused() {
    let out = std::process::Command::new(common::bin())
        .args([
            "worker",
            "--port",
            "0",
            "--v8-flags",
            "--no-such-v8-flag",
            "--bundle",
        ])
        .arg(bundle("faults.js"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-v8-flag"));
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let mut w = Worker::faults(&[]);
    let port = w.port;
    let slow = std::thread::spawn(move || {
        common::post(
            port,
            "/batch",
            br#"{"0":{"name":"Slow","data":{"ms":400}}}"#,
        )
    });
    std::thread::sleep(Duration::from_millis(150));
    let pid = w.pid() as i32;
    assert_eq!(send_signal(pid, 15), 0);
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["results"]["0"]["statusCode"], 200);
    assert_eq!(w.wait_exit(), Some(0));
}

#[test]
fn render_command_prints_html_or_a_json_error() {
    let mut child = std::process::Command::new(common::bin())
        .args(["render", "HelloWorld", "-", "--bundle"])
        .arg(bundle("server.js"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"name":"stdin"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("stdin"));

    let out = std::process::Command::new(common::bin())
        .args(["render", "Nope", "--bundle"])
        .arg(bundle("server.js"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["statusCode"], 404);
}

fn send_signal(pid: i32, sig: i32) -> i32 {
    std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .map(|s| s.code().unwrap_or(1))
        .unwrap_or(1)
}

#[test]
fn events_report_each_request_and_a_heartbeat() {
    let w = Worker::faults(&["--events"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let body = json!({"0": {"name": "HelloWorld"}, "1": {"name": "Nope"}, "2": {"name": "Throws"}, "3": {"name": 5}})
        .to_string();
    let raw = format!(
        "POST /batch HTTP/1.1\r\nHost: x\r\nX-Request-Id: req-42\r\nX-Request-Start: t={:.3}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        // 300 ms ago; the header carries milliseconds, so rounding moves it
        // by at most 0.5 ms and the worker must report at least 250 ms.
        now - 0.3,
        body.len()
    );
    let r = common::request(w.port, raw.as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("req-42"));
    let event = loop {
        let e = w
            .next_event(Duration::from_secs(5))
            .expect("a request event");
        if e["event"] == "request" {
            break e;
        }
    };
    assert_eq!(event["id"], "req-42");
    let wait = event["wait_ms"].as_f64().unwrap();
    assert!(
        (250.0..5000.0).contains(&wait),
        "wait since nginx got it: {wait}"
    );
    let outcomes: Vec<&str> = event["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "not_found", "error", "bad_request"]);
    assert_eq!(event["jobs"][0]["name"], "HelloWorld");
    // /stats counts the same outcomes the same way.
    let stats = w.get("/stats").json();
    assert_eq!(
        stats["jobs"],
        json!({"ok": 1, "not_found": 1, "bad_request": 1, "error": 1, "timeout": 0}),
        "{stats}"
    );
    assert!(event["heap_used"].as_u64().unwrap() > 0);
    let heartbeat = loop {
        let e = w
            .next_event(Duration::from_secs(3))
            .expect("a heartbeat within a few seconds");
        if e["event"] == "heartbeat" {
            break e;
        }
    };
    assert_eq!(heartbeat["requests"], 1);
    assert!(heartbeat["rss"].as_u64().unwrap() > 1 << 20);
    assert!(
        common::events_in(&w.stderr_lines(), LogEvent::JobFailed)
            .iter()
            .any(|v| v["request_id"] == "req-42"),
        "failed jobs are logged with the request id"
    );
}

#[test]
fn markup_option_answers_placements_for_successes_and_failures() {
    let w = Worker::faults(&[]);
    let body = json!({
        "0": {"name": "HelloWorld", "data": {"name": "</script >"}},
        "1": {"name": "Throws", "data": {"x": "\u{2028}"}},
    });
    let r = w.post("/batch?markup=1", body.to_string().as_bytes());
    assert_eq!(r.status, 200);
    let v = r.json();
    let ok = v["results"]["0"]["meta"]["markup"].as_str().unwrap();
    let html = v["results"]["0"]["html"].as_str().unwrap();
    assert!(ok.starts_with("<div data-hypernova-key=\"HelloWorld\" data-hypernova-id=\""));
    assert!(ok.contains(&format!(
        "\">{html}</div>\n<script type=\"application/json\" data-hypernova-key=\"HelloWorld\""
    )));
    assert!(
        ok.ends_with(r#"><!--{"name":"\u003c/script &gt;"}--></script>"#),
        "{ok}"
    );
    let failed = v["results"]["1"]["meta"]["markup"].as_str().unwrap();
    assert!(
        failed.contains("\"></div>\n<script"),
        "failed jobs get the fallback: {failed}"
    );
    assert!(failed.contains(r#"<!--{"x":"\u2028"}-->"#), "{failed}");

    let single = w.post("/render/Throws?markup=1", b"{}");
    assert_eq!(single.status, 200);
    assert_eq!(single.header("x-ssrd-fallback"), Some("Error"));
    assert!(single.text().contains("\"></div>\n<script"));
    let plain = w.post("/batch", body.to_string().as_bytes()).json();
    assert_eq!(
        plain["results"]["0"]["meta"],
        json!({}),
        "markup only when asked"
    );
}

#[test]
fn a_caller_that_goes_away_stops_its_render_at_once() {
    let w = Worker::faults(&[
        "--render-timeout-ms",
        "10000",
        "--request-budget-ms",
        "60000",
    ]);
    let runaways: serde_json::Map<String, Value> = (0..5)
        .map(|i| (i.to_string(), json!({"name": "Runaway"})))
        .collect();
    let bodies = [
        // A synchronous loop: terminated by the watchdog at once.
        Value::Object(runaways).to_string(),
        // An async render waiting on a timer: no JS runs, the wait ends.
        json!({"0": {"name": "Deferred", "data": {"ms": 8000}}}).to_string(),
    ];
    for body in bodies {
        let mut s = TcpStream::connect(("127.0.0.1", w.port)).unwrap();
        let req = format!(
            "POST /batch HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        drop(s);
        let started = Instant::now();
        let v = w.batch(&json!({"0": {"name": "HelloWorld"}}));
        assert_eq!(v["results"]["0"]["statusCode"], 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the next caller waited {:?} for a render nobody wanted",
            started.elapsed()
        );
    }
    let stats = w.get("/stats").json();
    assert_eq!(stats["abandoned"], 2, "{stats}");
    assert_eq!(
        stats["jobs"]["timeout"], 2,
        "only the two cut short: {stats}"
    );
}

/// A bundle that declares `markup: "placement"` (the example bundle) gets
/// every rendered job's /batch `html` in Hypernova's placement markup, so
/// the unchanged Hypernova clients, which paste `html`, get pages that
/// hydrate; a caller that writes the markup itself asks for bare HTML.
#[test]
fn a_placement_bundle_answers_batch_html_in_hypernovas_markup() {
    let w = Worker::start(&bundle("server.js"), &[]);
    let body =
        json!({"0": {"name": "HelloWorld", "data": {"name": "Loft"}}, "1": {"name": "Nope"}});
    let v = w.batch(&body);
    let html = v["results"]["0"]["html"].as_str().unwrap();
    assert!(
        html.starts_with("<div data-hypernova-key=\"HelloWorld\" data-hypernova-id=\""),
        "{html}"
    );
    assert!(html.contains("Loft"), "{html}");
    assert!(
        html.contains("<script type=\"application/json\" data-hypernova-key=\"HelloWorld\"")
            && html.ends_with("<!--{\"name\":\"Loft\"}--></script>"),
        "{html}"
    );
    // A failed job is left for the caller's fallback.
    assert_eq!(v["results"]["1"]["html"], Value::Null);
    // Bare on request; ?markup=1 keeps the placement apart, in meta.
    let bare = w
        .post("/batch?markup=0", body.to_string().as_bytes())
        .json();
    let bare_html = bare["results"]["0"]["html"].as_str().unwrap();
    assert!(
        bare_html.starts_with("<div class=\"hello-world\">"),
        "{bare_html}"
    );
    let meta = w
        .post("/batch?markup=1", body.to_string().as_bytes())
        .json();
    assert_eq!(meta["results"]["0"]["html"], bare["results"]["0"]["html"]);
    assert!(meta["results"]["0"]["meta"]["markup"]
        .as_str()
        .unwrap()
        .starts_with("<div data-hypernova-key=\"HelloWorld\""));
    // /render is ssrd's own route: bare HTML.
    let single = w.post("/render/HelloWorld", br#"{"name":"Loft"}"#).text();
    assert!(
        single.starts_with("<div class=\"hello-world\">"),
        "{single}"
    );
    drop(w);
    // A bundle that does not declare it (faults.js) is answered as it renders.
    let w = Worker::faults(&[]);
    let v = w.batch(&json!({"0": {"name": "HelloWorld", "data": {"name": "Loft"}}}));
    assert!(v["results"]["0"]["html"]
        .as_str()
        .unwrap()
        .starts_with("<div class=\"hello-world\">"));
}
