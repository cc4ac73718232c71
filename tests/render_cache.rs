//! The render cache (README, "The bundle contract", `cache`): a whole tier
//! serving tests/fixtures/cached.js, whose answers carry the number of the
//! render that made them (`data-n`), so a hit (the same number again) is
//! told from a render (a new one) by the answer itself, and the counts in
//! `/metrics` are checked against that.

mod common;

use std::time::{Duration, Instant};

use common::{fixture, LogEvent, Tier, TIMEOUT};
use serde_json::{json, Value};

/// One job through the tier's public port: its result object.
fn render(tier: &Tier, name: &str, props: Value) -> Value {
    render_with(tier, json!({"name": name, "data": props}))
}

fn render_with(tier: &Tier, job: Value) -> Value {
    let body = json!({ "j": job }).to_string();
    let r = common::post(tier.port, "/batch", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["results"]["j"].clone()
}

/// The render number an answer carries.
fn n(result: &Value) -> u64 {
    let html = result["html"]
        .as_str()
        .unwrap_or_else(|| panic!("{result}"));
    let at = html.find("data-n=\"").expect("data-n") + 8;
    html[at..].split('"').next().unwrap().parse().unwrap()
}

/// The sum of a metric's series whose name and labels start with `series`.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the supervisor's metrics (fed by the workers' heartbeats,
/// one a second) satisfy `done`; returns them.
fn metrics_until(tier: &Tier, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let m = tier.metrics();
        if done(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{what}:\n{m}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn bundle_copy(tag: &str) -> std::path::PathBuf {
    let dir = common::tempdir(tag);
    let path = dir.join("cached.js");
    std::fs::copy(fixture("cached.js"), &path).unwrap();
    path
}

#[test]
fn a_declared_component_renders_once_per_canonical_key_and_hits_are_counted() {
    let tier = Tier::start(1, &fixture("cached.js"), &[]);
    let first = render(&tier, "Nav", json!({"a": 1, "b": [1, {"y": 2, "x": 1}]}));
    assert_eq!(first["success"], true, "{first}");
    let again = render(&tier, "Nav", json!({"a": 1, "b": [1, {"y": 2, "x": 1}]}));
    // The same answer the render gave: html and meta, byte for byte (only
    // the job's duration differs).
    assert_eq!(again["html"], first["html"]);
    assert_eq!(again["meta"], first["meta"]);
    assert_eq!(
        (&again["statusCode"], &again["success"], &again["error"]),
        (&first["statusCode"], &first["success"], &first["error"])
    );
    assert_eq!(first["meta"]["version"], "v1");
    // Key order, at any depth, and whitespace do not matter.
    let body = br#"{"j":{"name":"Nav","data":{ "b":[1,{"x":1,"y":2}], "a":1 }}}"#;
    let r = common::post(tier.port, "/batch", body);
    assert_eq!(n(&r.json()["results"]["j"]), n(&first), "{}", r.text());
    // Other props, or other metadata, are another key.
    let other = render(&tier, "Nav", json!({"a": 2, "b": [1, {"y": 2, "x": 1}]}));
    assert!(n(&other) > n(&first), "{other}");
    let meta = render_with(
        &tier,
        json!({"name": "Nav", "data": {"a": 1, "b": [1, {"y": 2, "x": 1}]}, "metadata": {"user": "u2"}}),
    );
    assert!(n(&meta) > n(&other), "{meta}");
    assert!(meta["html"].as_str().unwrap().contains("data-user=\"u2\""));
    // A component the bundle did not declare renders every time.
    let u1 = render(&tier, "Uncached", json!({"a": 1}));
    let u2 = render(&tier, "Uncached", json!({"a": 1}));
    assert!(n(&u2) > n(&u1), "{u1} {u2}");
    // A failed render is not kept: the next one renders, and is kept.
    let f1 = render(&tier, "Flaky", json!({"k": 1}));
    assert_eq!(f1["success"], false, "{f1}");
    let f2 = render(&tier, "Flaky", json!({"k": 1}));
    assert_eq!(f2["success"], true, "{f2}");
    let f3 = render(&tier, "Flaky", json!({"k": 1}));
    assert_eq!(n(&f3), n(&f2));

    // Hits: Nav twice, Flaky once. Misses: Nav three times (first, other
    // props, other metadata), Flaky twice. Uncached is neither.
    let m = metrics_until(&tier, "cache counts in /metrics", |m| {
        metric(m, "ssrd_render_cache_hits_total") == 3.0
            && metric(m, "ssrd_render_cache_misses_total") == 5.0
    });
    assert!(metric(&m, "ssrd_render_cache_bytes{") > 0.0, "{m}");
    assert_eq!(metric(&m, "ssrd_render_cache_evictions_total"), 0.0, "{m}");
    // The worker's own /stats has the same figures.
    let stats = common::get(tier.worker_ports[0], "/stats").json();
    let cache = &stats["render_cache"];
    assert_eq!(
        (&cache["hits"], &cache["misses"]),
        (&json!(3), &json!(5)),
        "{stats}"
    );
    assert_eq!(cache["budget"], 64 << 20, "{stats}");
    assert_eq!(cache["entries"], 4, "{stats}");
}

#[test]
fn an_entry_expires_after_its_ttl() {
    let tier = Tier::start(1, &fixture("cached.js"), &[]);
    let a = render(&tier, "Short", json!({"q": "x"}));
    let b = render(&tier, "Short", json!({"q": "x"}));
    assert_eq!(n(&b), n(&a), "within its 300 ms ttl");
    std::thread::sleep(Duration::from_millis(600));
    let c = render(&tier, "Short", json!({"q": "x"}));
    assert!(n(&c) > n(&a), "rendered again after its ttl: {c}");
    metrics_until(&tier, "an expiry counted", |m| {
        metric(m, "ssrd_render_cache_evictions_total{reason=\"ttl\"}") == 1.0
    });
}

#[test]
fn the_byte_budget_holds_when_every_request_is_unique() {
    const BUDGET: u64 = 64 << 10;
    let tier = Tier::start(
        1,
        &fixture("cached.js"),
        &["--render-cache-bytes", &BUDGET.to_string()],
    );
    let mut highest = 0.0f64;
    let mut last_scrape = Instant::now();
    for i in 0..400 {
        let r = render(&tier, "Nav", json!({"id": i, "size": 2000}));
        assert_eq!(r["success"], true, "{r}");
        assert_eq!(r["meta"]["id"], i, "the answer for this request: {r}");
        assert!(r["html"]
            .as_str()
            .unwrap()
            .contains(&format!("&quot;id&quot;:{i},")));
        if last_scrape.elapsed() > Duration::from_millis(300) {
            let held = metric(&tier.metrics(), "ssrd_render_cache_bytes{");
            assert!(
                held <= BUDGET as f64,
                "{held} bytes held over a budget of {BUDGET}"
            );
            highest = highest.max(held);
            last_scrape = Instant::now();
        }
    }
    // The oldest were evicted: the first id renders again.
    let again = render(&tier, "Nav", json!({"id": 0, "size": 2000}));
    assert!(n(&again) > 400, "{again}");
    let m = metrics_until(
        &tier,
        "every unique request a miss, evictions counted",
        |m| metric(m, "ssrd_render_cache_misses_total") == 401.0,
    );
    let held = metric(&m, "ssrd_render_cache_bytes{");
    assert!(held <= BUDGET as f64 && held > BUDGET as f64 / 2.0, "{m}");
    highest = highest.max(held);
    assert!(highest > 0.0);
    assert_eq!(metric(&m, "ssrd_render_cache_hits_total"), 0.0, "{m}");
    // Entries of about 2.3 KB in 64 KiB: all but a few dozen evicted.
    let evicted = metric(&m, "ssrd_render_cache_evictions_total{reason=\"space\"}");
    assert!(evicted > 350.0, "{m}");
}

#[test]
fn a_budget_of_zero_turns_the_cache_off() {
    let tier = Tier::start(1, &fixture("cached.js"), &["--render-cache-bytes", "0"]);
    let a = render(&tier, "Nav", json!({"a": 1}));
    let b = render(&tier, "Nav", json!({"a": 1}));
    assert!(n(&b) > n(&a));
    assert_eq!(b["meta"], a["meta"]);
    let m = metrics_until(&tier, "a heartbeat", |m| {
        m.contains("ssrd_render_cache_bytes{")
    });
    assert_eq!(metric(&m, "ssrd_render_cache_hits_total"), 0.0, "{m}");
    assert_eq!(metric(&m, "ssrd_render_cache_misses_total"), 0.0, "{m}");
}

/// `ssrd worker` with `bundle`, bounded: one that starts (a declaration
/// wrongly accepted) is killed and fails the test instead of hanging it.
fn start_worker(bundle: &std::path::Path) -> std::process::Output {
    let child = std::process::Command::new(common::bin())
        .args(["worker", "--port", "0", "--bundle"])
        .arg(bundle)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_output(child, Duration::from_secs(30))
}

#[test]
fn a_wrong_cache_declaration_keeps_the_worker_from_starting() {
    let dir = common::tempdir("bad-cache");
    let source = std::fs::read_to_string(fixture("cached.js")).unwrap();
    let declared = "Nav: { maxEntries: 100000, ttlMs: 600000 },";
    assert!(source.contains(declared));
    for (replacement, needle) in [
        (
            "Nav: [],",
            "globalThis.ssrd.cache.Nav must be {maxEntries, ttlMs}",
        ),
        (
            "Nav: { maxEntries: 0, ttlMs: 1 },",
            "globalThis.ssrd.cache.Nav.maxEntries must be an integer from 1",
        ),
        (
            "Nav: { maxEntries: 5, ttlMs: 1.5 },",
            "globalThis.ssrd.cache.Nav.ttlMs must be an integer",
        ),
        (
            "Nav: { maxEntries: 5, ttl: 100 },",
            "globalThis.ssrd.cache.Nav has an unknown field",
        ),
    ] {
        let path = dir.join("bad.js");
        std::fs::write(&path, source.replace(declared, replacement)).unwrap();
        let out = start_worker(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{replacement}: {stderr}");
        assert!(stderr.contains(needle), "{replacement}: {stderr}");
        assert!(out.stdout.is_empty(), "{replacement}: no ready line");
    }
    let path = dir.join("bad.js");
    std::fs::write(
        &path,
        source.replace("cache: {", "cache: \"all\", ignored: {"),
    )
    .unwrap();
    let out = start_worker(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("globalThis.ssrd.cache must be an object"),
        "{stderr}"
    );
}

#[test]
fn after_a_reload_the_new_bundle_answers_never_a_stale_entry() {
    let path = bundle_copy("cache-reload");
    let mut tier = Tier::start(2, &path, &[]);
    let props = json!({"page": "home"});
    for _ in 0..4 {
        let r = render(&tier, "Nav", props.clone());
        assert_eq!(r["meta"]["version"], "v1", "{r}");
    }
    metrics_until(&tier, "hits before the reload", |m| {
        metric(m, "ssrd_render_cache_hits_total") >= 2.0
    });
    let source = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        source.replace(r#"const VERSION = "v1";"#, r#"const VERSION = "v2";"#),
    )
    .unwrap();
    tier.signal("HUP");
    tier.wait_log(LogEvent::ReloadComplete, 0, TIMEOUT);
    for _ in 0..6 {
        let r = render(&tier, "Nav", props.clone());
        assert_eq!(r["meta"]["version"], "v2", "{r}");
        assert!(r["html"].as_str().unwrap().contains("data-v=\"v2\""), "{r}");
    }
}
