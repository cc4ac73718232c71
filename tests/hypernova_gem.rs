//! The unchanged Hypernova Ruby client (hypernova-ruby 2.0.0, its `lib/`
//! named by `HYPERNOVA_RUBY_LIB`, with its default timeouts) against the
//! whole tier: for every way a render or a request can fail, every
//! component of the page ends as server HTML or as the gem's fallback
//! markup (never missing), and the app's `on_error` hears of each failure.
//!
//! The page is built by `tests/gem/page.rb` the way a Rails controller does
//! (`render_react_component` per component, then the batch); the bundle is
//! `tests/fixtures/gem-app.js`.

mod common;

use std::time::{Duration, Instant};

use common::{fixture, Tier};
use serde_json::{json, Value};

/// Where the gem is (`HYPERNOVA_RUBY_LIB`, which .ci/run sets), or None
/// (then the tests say so and pass) unless CI requires it
/// (`SSRD_REQUIRE_PEERS`).
fn gem_lib() -> Option<std::path::PathBuf> {
    let lib = std::env::var_os("HYPERNOVA_RUBY_LIB").map(std::path::PathBuf::from);
    if let Some(lib) = lib.filter(|l| l.join("hypernova.rb").exists()) {
        return Some(lib);
    }
    assert!(
        std::env::var_os("SSRD_REQUIRE_PEERS").is_none(),
        "SSRD_REQUIRE_PEERS is set but HYPERNOVA_RUBY_LIB names no hypernova gem"
    );
    eprintln!("skipped: set HYPERNOVA_RUBY_LIB to the hypernova gem's lib/ to run this");
    None
}

/// What the page came to: one section per component, and `on_error` calls.
#[derive(Debug)]
struct Page {
    sections: Vec<String>,
    errors: Vec<String>,
    ms: u64,
}

impl Page {
    /// The section holds the gem's fallback markup for `name` with `props`:
    /// an empty div and the props for the browser to render from.
    fn is_fallback(&self, i: usize, name: &str) -> bool {
        let s = &self.sections[i];
        s.contains(&format!(r#"<div data-hypernova-key="{name}""#))
            && s.contains("></div>")
            && s.contains(r#"<script type="application/json" data-hypernova-key=""#)
    }

    fn assert_fallback(&self, i: usize, name: &str, props: &Value) {
        assert!(
            self.is_fallback(i, name),
            "section {i}: {:?}",
            self.sections[i]
        );
        let json = props.to_string().replace('&', "&amp;").replace('>', "&gt;");
        assert!(
            self.sections[i].contains(&format!("<!--{json}-->")),
            "section {i} carries the props for the browser: {:?}",
            self.sections[i]
        );
    }

    fn errors_matching(&self, needle: &str) -> usize {
        self.errors.iter().filter(|e| e.contains(needle)).count()
    }
}

/// Renders `components` (name, props) through the gem against `port`.
fn page(lib: &std::path::Path, port: u16, components: &[(&str, Value)], raw: &[usize]) -> Page {
    let spec = json!({
        "port": port,
        "components": components.iter().map(|(n, d)| json!({"name": n, "data": d})).collect::<Vec<_>>(),
        "raw_data": raw,
    });
    let v = common::gem_page(lib, &spec);
    let page = Page {
        sections: v["sections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
        errors: v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["error"].as_str().unwrap().to_string())
            .collect(),
        ms: v["ms"].as_u64().unwrap(),
    };
    assert_eq!(
        page.sections.len(),
        components.len(),
        "one section per component: {page:?}"
    );
    for (i, s) in page.sections.iter().enumerate() {
        assert!(!s.trim().is_empty(), "section {i} is missing: {page:?}");
    }
    page
}

fn greeting(name: &str) -> (&'static str, Value) {
    ("Greeting", json!({ "name": name }))
}

#[test]
fn every_job_of_a_page_is_server_html_or_fallback_and_failures_reach_on_error() {
    let Some(lib) = gem_lib() else { return };
    let tier = Tier::start(2, &fixture("gem-app.js"), &[]);

    // A batch of several components: all server HTML, no errors.
    let comps = [
        greeting("Ada"),
        ("Listing", json!({"items": ["a", "b & c"]})),
        greeting("Grace"),
    ];
    let p = page(&lib, tier.port, &comps, &[]);
    assert_eq!(p.sections[0], r#"<p class="greeting">Hello, Ada!</p>"#);
    assert_eq!(p.sections[1], "<ul><li>a</li><li>b &amp; c</li></ul>");
    assert_eq!(p.sections[2], r#"<p class="greeting">Hello, Grace!</p>"#);
    assert!(p.errors.is_empty(), "{p:?}");

    // A throwing job, an unknown component, an empty render and a job the
    // tier finds malformed (a name that is not a string): each of those
    // falls back alone and is reported; the others are server HTML.
    let comps = [
        greeting("Ada"),
        ("Throws", json!({"x": 1})),
        ("Nope", json!({"y": 2})),
        ("ClientOnly", json!({"z": 3})),
        greeting("Linus"),
    ];
    let p = page(&lib, tier.port, &comps, &[]);
    assert_eq!(p.sections[0], r#"<p class="greeting">Hello, Ada!</p>"#);
    p.assert_fallback(1, "Throws", &comps[1].1);
    p.assert_fallback(2, "Nope", &comps[2].1);
    p.assert_fallback(3, "ClientOnly", &comps[3].1);
    assert_eq!(p.sections[4], r#"<p class="greeting">Hello, Linus!</p>"#);
    assert_eq!(p.errors.len(), 3, "{p:?}");
    assert_eq!(p.errors_matching("Throws: this component always fails"), 1);
    assert_eq!(p.errors_matching(r#"Component "Nope" not registered"#), 1);
    assert_eq!(p.errors_matching("EmptyRender"), 1);

    // Props whose JSON is broken (a model with a faulty to_json): the body
    // is malformed, the tier refuses the whole batch, and the gem falls
    // back for every job and reports why.
    let comps = [greeting("Ada"), greeting("Bob")];
    let p = page(&lib, tier.port, &comps, &[1]);
    assert!(
        p.is_fallback(0, "Greeting") && p.is_fallback(1, "Greeting"),
        "{p:?}"
    );
    assert_eq!(p.errors.len(), 1, "{p:?}");
    assert_eq!(
        p.errors_matching("BadRequest: request body is not valid JSON"),
        1
    );

    // A render past the gem's 0.6 s timeout: the whole page falls back, and
    // the tier stops rendering for the caller that left.
    let comps = [greeting("Ada"), ("Slow", json!({"ms": 900}))];
    let p = page(&lib, tier.port, &comps, &[]);
    p.assert_fallback(0, "Greeting", &comps[0].1);
    p.assert_fallback(1, "Slow", &comps[1].1);
    assert_eq!(p.errors.len(), 1, "{p:?}");
    assert_eq!(p.errors_matching("Faraday::TimeoutError"), 1, "{p:?}");
    assert!(p.ms < 900, "the gem gave up at its timeout: {} ms", p.ms);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tier.metrics().contains("ssrd_abandoned_requests_total 1") {
        assert!(Instant::now() < deadline, "{}", tier.metrics());
        std::thread::sleep(Duration::from_millis(50));
    }

    // The tier is still fine.
    let p = page(&lib, tier.port, &[greeting("again")], &[]);
    assert_eq!(p.sections[0], r#"<p class="greeting">Hello, again!</p>"#);
}

#[test]
fn batch_level_failures_from_every_hop_make_the_gem_fall_back() {
    let Some(lib) = gem_lib() else { return };
    let mut tier = Tier::start(
        1,
        &fixture("gem-app.js"),
        &[
            "--max-body-mb",
            "1",
            "--queue-timeout-ms",
            "150",
            "--render-timeout-ms",
            "3000",
            "--request-budget-ms",
            "3000",
        ],
    );

    // Props over the body limit: nginx answers 413 (having read the body,
    // so the client sees the status, not a reset).
    let big = "x".repeat(1_200_000);
    let comps = [greeting("Ada"), ("Greeting", json!({ "name": big }))];
    let p = page(&lib, tier.port, &comps, &[]);
    assert!(
        p.is_fallback(0, "Greeting") && p.is_fallback(1, "Greeting"),
        "{p:?}"
    );
    assert_eq!(p.errors.len(), 1, "{p:?}");
    assert_eq!(p.errors_matching("PayloadTooLarge"), 1, "{p:?}");

    // No free worker: the only one is busy, haproxy's queue times out (503,
    // retried once by nginx, 503 again) well inside the gem's 0.6 s.
    let busy = {
        let port = tier.port;
        std::thread::spawn(move || {
            common::post(
                port,
                "/batch",
                json!({"0": {"name": "Slow", "data": {"ms": 1500}}})
                    .to_string()
                    .as_bytes(),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let comps = [greeting("Ada"), greeting("Bob")];
    let p = page(&lib, tier.port, &comps, &[]);
    assert!(
        p.is_fallback(0, "Greeting") && p.is_fallback(1, "Greeting"),
        "{p:?}"
    );
    assert_eq!(p.errors.len(), 1, "{p:?}");
    assert_eq!(p.errors_matching("Unavailable"), 1, "{p:?}");
    assert_eq!(busy.join().unwrap().status, 200);

    // The tier itself is fine afterwards.
    let p = page(&lib, tier.port, &comps, &[]);
    assert_eq!(p.sections[1], r#"<p class="greeting">Hello, Bob!</p>"#);

    // The tier down: nothing listens; the gem falls back and reports it.
    let port = tier.port;
    tier.signal("TERM");
    tier.wait_exit(Duration::from_secs(20));
    let p = page(&lib, port, &comps, &[]);
    assert!(
        p.is_fallback(0, "Greeting") && p.is_fallback(1, "Greeting"),
        "{p:?}"
    );
    assert_eq!(p.errors.len(), 1, "{p:?}");
    assert_eq!(p.errors_matching("Faraday::ConnectionFailed"), 1, "{p:?}");
}
