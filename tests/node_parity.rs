//! Modern React apps render in ssrd exactly as in Node (issue 10): the same
//! source rendered by a real `ssrd worker` over loopback HTTP and by Node
//! (`js-bundle/scripts/render-node.mjs`) gives the same HTML and meta, byte
//! for byte. The React examples are built twice from js-bundle/src/modern,
//! into dist/server.js (web builds: react-dom's server.browser/static.browser,
//! styled-components' server ESM build) and into dist/node-modern.cjs
//! (React's Node builds); the web-API fixture runs as is in both, so ssrd's
//! own Headers/Request/Response and deno_web's streams are held to Node's
//! implementations of the same standards. Each test also asserts on the
//! content itself, so two identical wrong answers fail too.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{bundle, fixture, root, Worker};
use serde_json::{json, Value};

/// Renders `jobs` ([{name, props}]) with Node; `with_bundle` loads a
/// classic-script ssrd bundle instead of the modern examples. One
/// {html, meta} per job.
fn node_render(jobs: &Value, with_bundle: Option<&Path>) -> Vec<Value> {
    let script = root().join("js-bundle/scripts/render-node.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(&script);
    if let Some(b) = with_bundle {
        cmd.arg("--bundle").arg(b);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is installed (.ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(jobs.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("node printed JSON");
    for (r, job) in results.iter().zip(jobs.as_array().unwrap()) {
        assert!(r.get("error").is_none(), "node failed {job}: {r}");
    }
    results
}

/// Renders `jobs` in one batch on `w`. One {html, meta} per job.
fn ssrd_render(w: &Worker, jobs: &Value) -> Vec<Value> {
    let mut batch = serde_json::Map::new();
    for (i, job) in jobs.as_array().unwrap().iter().enumerate() {
        batch.insert(
            i.to_string(),
            json!({"name": job["name"], "data": job["props"]}),
        );
    }
    // The component's own HTML (the bundle would wrap it in placement
    // markup otherwise), which is what Node's render gives.
    let r = w.post(
        "/batch?markup=0",
        Value::Object(batch).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    (0..jobs.as_array().unwrap().len())
        .map(|i| {
            let r = &v["results"][i.to_string()];
            assert_eq!(r["statusCode"], 200, "ssrd failed job {i}: {r}");
            json!({"html": r["html"], "meta": r["meta"]})
        })
        .collect()
}

/// Renders with both and asserts the answers are identical; returns them.
fn same_in_both(w: &Worker, jobs: &Value, with_bundle: Option<&Path>) -> Vec<Value> {
    let ours = ssrd_render(w, jobs);
    let node = node_render(jobs, with_bundle);
    assert_eq!(ours.len(), node.len());
    for (i, (a, b)) in ours.iter().zip(&node).enumerate() {
        assert_eq!(
            a["html"], b["html"],
            "job {i} ({}): HTML differs from Node's",
            jobs[i]["name"]
        );
        assert_eq!(
            a["meta"], b["meta"],
            "job {i} ({}): meta differs from Node's",
            jobs[i]["name"]
        );
    }
    ours
}

fn html(r: &Value) -> &str {
    r["html"].as_str().expect("html is a string")
}

fn reviews_props(mode: &str) -> Value {
    json!({
        "mode": mode,
        "title": "Guest reviews <for> Lisbon",
        "delayMs": 20,
        "summary": {"count": 3, "average": "4.87"},
        "reviews": [
            {"id": "r1", "author": "Ana", "date": "2026-05-12", "text": "Bright & quiet, close to the tram"},
            {"id": "r2", "author": "Kenji", "date": "2026-06-01", "text": "</script><script>alert(1)</script>"},
            {"id": "r3", "author": "Sigrún", "date": "2026-07-19", "text": "Would stay again — ★★★★★"},
        ],
    })
}

#[test]
fn suspense_lazy_and_use_render_the_resolved_data_as_in_node() {
    let w = Worker::start(&bundle("server.js"), &["--render-timeout-ms", "1000"]);
    let jobs = json!([
        {"name": "SuspenseReviews", "props": reviews_props("prerender")},
        {"name": "SuspenseReviews", "props": reviews_props("stream")},
    ]);
    let answers = same_in_both(&w, &jobs, None);
    for (a, mode) in answers.iter().zip(["prerender", "stream"]) {
        let h = html(a);
        assert_eq!(a["meta"]["mode"], mode);
        // The data that arrived on timers is in, the fallbacks are not.
        assert!(h.contains("3<!-- --> reviews, average <!-- -->4.87"), "{h}");
        assert!(h.contains("<strong>Sigrún</strong>"), "{h}");
        assert!(h.contains("Would stay again — ★★★★★"), "{h}");
        assert!(!h.contains("Loading"), "a fallback was rendered: {h}");
        // Props are text, escaped, never markup.
        assert!(
            h.contains("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{h}"
        );
        assert!(h.contains("Guest reviews &lt;for&gt; Lisbon"), "{h}");
    }
}

#[test]
fn react_router_data_router_pages_render_as_in_node() {
    let w = Worker::start(&bundle("server.js"), &[]);
    let data = json!({
        "site": "Loft",
        "user": "Grace",
        "listings": [
            {"id": 1, "title": "Sunny loft", "description": "Tall windows.", "price": "€120"},
            {"id": 2, "title": "Quiet studio", "description": "Oak floors & calm.", "price": "€95"},
        ],
    });
    let jobs = json!([
        {"name": "RouterPage", "props": {"path": "/", "data": data}},
        {"name": "RouterPage", "props": {"path": "/listings/2", "data": data}},
        {"name": "RouterPage", "props": {"path": "/listings/9", "data": data}},
        {"name": "RouterPage", "props": {"path": "/rooms/1", "data": data}},
    ]);
    let a = same_in_both(&w, &jobs, None);
    assert_eq!(a[0]["meta"]["status"], 200);
    assert!(html(&a[0]).contains(r#"<a href="/listings/2" data-discover="true">Quiet studio</a>"#));
    assert!(html(&a[0]).contains("Signed in as Grace"));
    // The loader's data (from props) is rendered and handed to the client.
    assert_eq!(a[1]["meta"]["status"], 200);
    assert!(html(&a[1]).contains("<h1>Quiet studio</h1><p>Oak floors &amp; calm.</p>"));
    assert!(html(&a[1]).contains("window.__staticRouterHydrationData"));
    // A loader's 404 reaches the route's error boundary and the status.
    assert_eq!(a[2]["meta"]["status"], 404);
    assert!(html(&a[2]).contains("404<!-- --> <!-- -->No such listing"));
    // A loader's redirect comes back as status and location.
    assert_eq!(
        a[3]["meta"],
        json!({"status": 301, "location": "/listings/1"})
    );
}

#[test]
fn styled_components_extract_the_same_styles_as_in_node() {
    let w = Worker::start(&bundle("server.js"), &[]);
    let jobs = json!([
        {"name": "StyledCard", "props": {
            "title": "Sunny loft", "body": "Tall windows.", "actions": ["Reserve", "Save"],
            "theme": {"accent": "#e0565b", "border": "#ddd", "font": "system-ui"},
        }},
        {"name": "StyledCard", "props": {
            "title": "Quiet studio", "body": "Oak floors.", "actions": ["Book"],
            "theme": {"accent": "rebeccapurple", "border": "#eee", "font": "serif"},
        }},
    ]);
    let a = same_in_both(&w, &jobs, None);
    for (answer, accent) in a.iter().zip(["#e0565b", "rebeccapurple"]) {
        let styles = answer["meta"]["styles"].as_str().expect("meta.styles");
        assert!(
            styles.starts_with(r#"<style data-styled="true" data-styled-version="6.6.0">"#),
            "{styles}"
        );
        assert!(styles.contains(&format!("color:{accent};")), "{styles}");
        assert!(styles.contains("@keyframes"), "{styles}");
        // Each class in the HTML has its rule in the extracted styles.
        let h = html(answer);
        let class = h
            .split("<h3 class=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|c| c.split(' ').nth(1))
            .unwrap_or_else(|| panic!("no styled class on the title: {h}"));
        assert!(styles.contains(&format!(".{class}{{")), "{class}: {styles}");
    }
    // One sheet per job: the second job's styles hold nothing of the first.
    let second = a[1]["meta"]["styles"].as_str().unwrap();
    assert!(!second.contains("#e0565b"), "{second}");
}

#[test]
fn headers_request_response_and_streams_behave_as_in_node() {
    let dir = common::tempdir("parity-web");
    let snap = dir.join("fetch-streams.snap");
    let jobs = json!([{"name": "Web", "props": {}}]);
    let node = node_render(&jobs, Some(&fixture("fetch-streams.js")));
    let node_checks: Value = serde_json::from_str(node[0]["html"].as_str().unwrap()).unwrap();
    for extra in [vec![], vec!["--snapshot", snap.to_str().unwrap()]] {
        let w = Worker::start(&fixture("fetch-streams.js"), &extra);
        let ours = ssrd_render(&w, &jobs);
        let checks: Value = serde_json::from_str(html(&ours[0])).unwrap();
        // Field by field first, for a readable failure.
        for (key, expected) in node_checks.as_object().unwrap() {
            assert_eq!(&checks[key], expected, "{key} ({extra:?})");
        }
        assert_eq!(ours[0]["html"], node[0]["html"], "{extra:?}");
        assert_eq!(checks["streamBody"], "chunk one, chunk two");
        assert_eq!(checks["textStreams"], "grüße");
        assert_eq!(checks["headersGet"][0], "1, 2");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn node_globals_are_minimal_and_what_is_missing_explains_itself() {
    let w = Worker::start(&fixture("fetch-streams.js"), &[]);
    // Left behind: a setImmediate (cancelled with the job) and a nextTick
    // (a microtask: runs with the job that queued it).
    assert_eq!(
        html(&ssrd_render(&w, &json!([{"name": "Leave", "props": {}}]))[0]),
        "left"
    );
    let a = ssrd_render(&w, &json!([{"name": "Sandbox", "props": {}}]));
    let s: Value = serde_json::from_str(html(&a[0])).unwrap();
    assert_eq!(s["processKeys"], json!(["env", "nextTick"]), "{s}");
    assert_eq!(s["processFrozen"], true);
    assert_eq!(s["nodeEnv"], "production");
    assert_eq!(s["unknownEnv"], Value::Null);
    assert_eq!(s["noVersions"], true);
    assert_eq!(s["notNodeProcess"], true);
    assert_eq!(s["noBuffer"], true);
    let require = s["require"].as_str().unwrap();
    assert!(
        require.starts_with("TypeError: require(\"crypto\"): the ssrd render worker is not Node"),
        "{require}"
    );
    assert!(
        require.contains("platform \"neutral\"") && require.contains("The bundle contract"),
        "the error says how to rebuild: {require}"
    );
    let fetch = s["fetch"].as_str().unwrap();
    assert!(
        fetch.starts_with("TypeError: fetch(\"https://example.com/data.json\") is not available")
            && fetch.contains("no network")
            && fetch.contains("props"),
        "{fetch}"
    );
    // nextTick before the timer-driven immediate; a cleared one never runs.
    assert_eq!(s["order"], json!(["sync", "tick 1", "immediate xy"]));
    let left = ssrd_render(&w, &json!([{"name": "Leftovers", "props": {}}]));
    assert_eq!(
        html(&left[0]),
        r#"["tick"]"#,
        "the leftover setImmediate must not run in a later job"
    );
}

#[test]
fn a_message_channel_made_while_the_bundle_loads_keeps_working() {
    // react-dom's server.browser build schedules its work on such a channel;
    // closing it with the first job's leftovers stalled every later job.
    let w = Worker::start(&fixture("load-channel.js"), &["--render-timeout-ms", "500"]);
    for n in 0..3 {
        let a = ssrd_render(&w, &json!([{"name": "Scheduled", "props": {"n": n}}]));
        assert_eq!(html(&a[0]), format!("scheduled {n}"));
        let b = ssrd_render(&w, &json!([{"name": "JobChannel", "props": {}}]));
        assert_eq!(html(&b[0]), "left open");
    }
}
