//! An existing Hypernova app runs on ssrd as it is (docs/hypernova.md).
//!
//! tests/hypernova-app is a Hypernova app written as Hypernova's README
//! shows. Its unchanged sources are built twice: for the real Hypernova
//! 2.5.0 server on Node (`hypernova/server` and `hypernova-react` as they
//! are on npm) and, with the ssrd-hypernova package's esbuild recipe
//! (js-bundle/packages/ssrd-hypernova, installed by path), for ssrd.
//! Both run on free loopback ports and get the same `/batch`: every job must
//! come back the same, byte for byte apart from the placement's random id
//! and ssrd's documented `<` escape inside the props JSON.
//!
//! Needs `npm ci` in tests/hypernova-app (.ci/run does it) and Node.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Instant;

use common::{root, Tier, Worker, TIMEOUT};
use serde_json::{json, Value};

fn app_dir() -> PathBuf {
    root().join("tests/hypernova-app")
}

/// Builds the app (all its bundles, build.mjs) once per test binary, into a
/// folder of its own inside the app (so Node finds the app's node_modules
/// from the .cjs files); returns that folder.
fn built() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let app = app_dir();
        for package in ["hypernova", "ssrd-hypernova"] {
            let manifest = app.join(format!("node_modules/{package}/package.json"));
            assert!(
                manifest.exists(),
                "tests/hypernova-app/node_modules has no {package}: run `npm ci` in it first"
            );
        }
        sweep_stale_builds(&app.join("dist"));
        let rel = format!("dist/cargo-{}", std::process::id());
        let out = Command::new("node")
            .arg("build.mjs")
            .arg(&rel)
            .current_dir(&app)
            .output()
            .expect("run node build.mjs");
        assert!(
            out.status.success(),
            "build.mjs failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        app.join(rel)
    })
}

/// Removes build folders left by test runs whose process is gone.
fn sweep_stale_builds(dist: &Path) {
    let Ok(entries) = std::fs::read_dir(dist) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("cargo-") else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The real Hypernova server on Node (devMode: one process), killed on drop.
struct Hypernova {
    child: Child,
    port: u16,
}

impl Hypernova {
    /// Runs `node <build>/<file>` (a Node build of one of the app's server
    /// files) on a free loopback port and waits for Hypernova's "Connected".
    fn start(file: &str) -> Hypernova {
        let script = built().join(file);
        for _attempt in 0..3 {
            let port = std::net::TcpListener::bind(("127.0.0.1", 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("node")
                .arg(&script)
                .current_dir(app_dir())
                .env("PORT", port.to_string())
                .env("NODE_ENV", "production")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn node");
            let (tx, rx) = mpsc::channel();
            for pipe in [
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
                Box::new(child.stderr.take().unwrap()),
            ] {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(pipe).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(line).is_err() {
                            // Keep draining so Node never blocks on a full pipe.
                            continue;
                        }
                    }
                });
            }
            drop(tx);
            let deadline = Instant::now() + TIMEOUT;
            let mut seen = Vec::new();
            let connected = loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(line) if line.contains("Connected") => break true,
                    Ok(line) => seen.push(line),
                    Err(_) => break false,
                }
            };
            if connected {
                return Hypernova { child, port };
            }
            let _ = child.kill();
            let _ = child.wait();
            let text = seen.join("\n");
            assert!(
                text.contains("EADDRINUSE"),
                "Hypernova on Node never said Connected:\n{text}"
            );
        }
        panic!("no free port for Hypernova after 3 attempts");
    }

    fn batch(&self, body: &Value) -> Value {
        let r = common::post(self.port, "/batch", body.to_string().as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}

impl Drop for Hypernova {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replaces each placement's random id with "ID", after checking that the
/// div and the script of a placement carry the same UUID.
fn without_ids(html: &str) -> String {
    const ATTR: &str = "data-hypernova-id=\"";
    let mut out = String::new();
    let mut ids = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(ATTR) {
        let start = at + ATTR.len();
        let id = &rest[start..(start + 36).min(rest.len())];
        assert!(
            id.len() == 36
                && id
                    .chars()
                    .enumerate()
                    .all(|(i, c)| if [8, 13, 18, 23].contains(&i) {
                        c == '-'
                    } else {
                        c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
                    })
                && rest[start + 36..].starts_with('"'),
            "not a UUID in {html}"
        );
        ids.push(id.to_string());
        out.push_str(&rest[..start]);
        out.push_str("ID");
        rest = &rest[start + 36..];
    }
    out.push_str(rest);
    for pair in ids.chunks(2) {
        assert!(
            pair.len() == 2 && pair[0] == pair[1],
            "a placement's div and script have different ids: {html}"
        );
    }
    out
}

/// Hypernova's markup with ssrd's one documented difference applied: `<`
/// inside the props JSON (between `<!--` and `-->` in the script element)
/// written as the JSON escape `\u003c`.
fn with_ssrd_escape(html: &str) -> String {
    let Some(script) = html.find("<script type=\"application/json\"") else {
        return html.to_string();
    };
    let open = script + html[script..].find("><!--").expect("props comment") + "><!--".len();
    let close = open + html[open..].rfind("--></script>").expect("end of props");
    format!(
        "{}{}{}",
        &html[..open],
        html[open..close].replace('<', "\\u003c"),
        &html[close..]
    )
}

/// Jobs that cover what the app does: plain, stateful (hooks), fetched
/// asynchronously by getComponent, static markup, a render function that
/// echoes getComponent's context, and the two failures.
fn app_batch(greeting_name: &str) -> Value {
    json!({
        "0": {"name": "Greeting.js", "data": {"name": greeting_name, "places": ["Lisbon", "Zürich", "Kyoto"]}},
        "1": {"name": "Counter.js", "data": {"label": "Guests", "start": 3}},
        "2": {"name": "Listing.js", "data": {"title": "Loft by the canal & \"park\" >", "price": {"amount": 120, "currency": "EUR"}, "superhost": true}},
        "3": {"name": "Footer.js", "data": {"year": 2026, "company": "Acme & Co"}},
        "4": {"name": "ContextProbe", "data": {"nested": {"list": [1, 2.5, null, true]}}, "metadata": {"page": "search", "locale": "fr"}},
        "5": {"name": "Nope.js", "data": {"x": 1}},
        "6": {"name": "Empty", "data": {}},
    })
}

const RENDERED: [&str; 5] = ["0", "1", "2", "3", "4"];

/// Asserts that each rendered job of `ours` equals Hypernova's (`theirs`)
/// once ids are normalised and `fix` is applied to Hypernova's HTML, with
/// the same name, status and meta; and that both fail the failures alike.
fn assert_same_results(ours: &Value, theirs: &Value, fix: impl Fn(&str) -> String) {
    let (o, t) = (&ours["results"], &theirs["results"]);
    assert_eq!(
        o.as_object().unwrap().keys().collect::<Vec<_>>(),
        t.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    for token in RENDERED {
        let (a, b) = (&o[token], &t[token]);
        let name = b["name"].as_str().unwrap();
        assert_eq!(b["success"], true, "Hypernova rendered {name}: {b}");
        assert_eq!(a["success"], true, "ssrd rendered {name}: {a}");
        assert_eq!(a["name"], b["name"]);
        assert_eq!(a["statusCode"], 200);
        assert_eq!(a["meta"], b["meta"], "{name}: meta");
        assert_eq!(
            without_ids(a["html"].as_str().unwrap()),
            without_ids(&fix(b["html"].as_str().unwrap())),
            "{name}: ssrd's html (left) differs from Hypernova's (right)"
        );
    }

    // A name getComponent does not know: 404, ReferenceError, same message.
    let (a, b) = (&o["5"], &t["5"]);
    for job in [a, b] {
        assert_eq!(job["statusCode"], 404, "{job}");
        assert_eq!(job["success"], false, "{job}");
        assert_eq!(job["html"], Value::Null, "{job}");
        assert_eq!(job["error"]["name"], "ReferenceError", "{job}");
    }
    assert_eq!(a["error"]["message"], b["error"]["message"]);
    assert_eq!(
        a["error"]["message"],
        "Component \"Nope.js\" not registered"
    );

    // A render function that returns no HTML fails the job in both.
    for job in [&o["6"], &t["6"]] {
        assert_eq!(job["statusCode"], 500, "{job}");
        assert_eq!(job["success"], false, "{job}");
        assert_eq!(job["html"], Value::Null, "{job}");
    }
}

#[test]
fn same_batch_same_html_as_hypernova_on_node() {
    let hypernova = Hypernova::start("hypernova-node.cjs");
    let worker = Worker::start(&built().join("ssrd-server.js"), &[]);

    // Props without "<": byte-identical apart from the ids.
    let batch = app_batch("Loft & \"friends\" > é ✓");
    let theirs = hypernova.batch(&batch);
    let ours = worker.batch(&batch);
    assert_same_results(&ours, &theirs, str::to_string);

    // The markup is what hypernova-react writes: a keyed div with the server
    // HTML, the props in a script element (the gem inserts it as it is).
    let html = ours["results"]["1"]["html"].as_str().unwrap();
    assert!(
        without_ids(html).starts_with(
            "<div data-hypernova-key=\"Counterjs\" data-hypernova-id=\"ID\"><div class=\"counter\" data-live=\"no\">"
        ),
        "{html}"
    );
    assert!(
        without_ids(html).ends_with(
            "</div></div>\n<script type=\"application/json\" data-hypernova-key=\"Counterjs\" data-hypernova-id=\"ID\"><!--{\"label\":\"Guests\",\"start\":3}--></script>"
        ),
        "{html}"
    );
    // getComponent got Hypernova's job context, and its returnMeta came back.
    assert_eq!(ours["results"]["4"]["meta"], json!({"probed": true}));
    assert!(ours["results"]["4"]["html"]
        .as_str()
        .unwrap()
        .contains(r#""metadata":{"page":"search","locale":"fr"}"#));

    // Props with "<" (and a try at ending the script element): the only
    // difference is ssrd's \u003c inside the props JSON.
    let batch = app_batch("</script ><script>alert(1)</script> <b>Loft</b>");
    let theirs = hypernova.batch(&batch);
    let ours = worker.batch(&batch);
    let greeting = ours["results"]["0"]["html"].as_str().unwrap();
    assert!(
        !greeting.contains("</script ><script>"),
        "props end the script element early: {greeting}"
    );
    assert_same_results(&ours, &theirs, with_ssrd_escape);
}

/// The evidence for mapping hypernova-react in the server build too:
/// hypernova-react itself works inside ssrd (its markup is Hypernova's byte
/// for byte, "<" and all), but only the adapter escapes "<".
#[test]
fn hypernova_react_itself_also_renders_in_ssrd_without_the_escape() {
    let hypernova = Hypernova::start("hypernova-node.cjs");
    let worker = Worker::start(&built().join("ssrd-server-hnreact.js"), &[]);
    let batch = app_batch("<i>Loft</i>");
    let theirs = hypernova.batch(&batch);
    let ours = worker.batch(&batch);
    assert_same_results(&ours, &theirs, str::to_string);
    assert!(ours["results"]["0"]["html"]
        .as_str()
        .unwrap()
        .contains(r#"<!--{"name":"<i&gt;Loft</i&gt;""#));
}

#[test]
fn server_plugins_job_hooks_run_as_in_hypernova() {
    let hypernova = Hypernova::start("hypernova-plugins-node.cjs");
    let worker = Worker::start(&built().join("ssrd-plugins.js"), &[]);
    let batch = json!({
        "0": {"name": "Greeting.js", "data": {"name": "plugins", "places": ["Oslo"]}},
        "1": {"name": "Counter.js", "data": {"label": "Nights", "start": 0}},
        "2": {"name": "Nope.js", "data": {}},
    });
    let theirs = hypernova.batch(&batch);
    let ours = worker.batch(&batch);
    for token in ["0", "1"] {
        let (a, b) = (&ours["results"][token], &theirs["results"][token]);
        assert_eq!(
            without_ids(a["html"].as_str().unwrap()),
            without_ids(b["html"].as_str().unwrap())
        );
        // initialize (async, before the first job), jobStart (async, with
        // the plugin's store), beforeRender, afterRender (sees the HTML) and
        // jobEnd all wrote to returnMeta.
        assert_eq!(a["meta"], b["meta"], "{token}");
        assert_eq!(a["meta"]["initialized"], "yes", "{a}");
        assert_eq!(a["meta"]["jobStart"], "started", "{a}");
        assert_eq!(a["meta"]["jobEnd"], true, "{a}");
        // (a JS string's length: UTF-16 code units)
        let length = a["html"].as_str().unwrap().encode_utf16().count();
        assert_eq!(a["meta"]["htmlLength"], length as u64, "{a}");
    }
    for job in [&ours["results"]["2"], &theirs["results"]["2"]] {
        assert_eq!(job["statusCode"], 404, "{job}");
    }
}

/// The way a Rails app reaches ssrd in production: through `ssrd up`'s
/// nginx and haproxy, with several jobs per batch.
#[test]
fn through_the_tier_same_html_as_hypernova() {
    let hypernova = Hypernova::start("hypernova-node.cjs");
    let tier = Tier::start(1, &built().join("ssrd-server.js"), &[]);
    let batch = app_batch("tier");
    let theirs = hypernova.batch(&batch);
    let r = common::post(tier.port, "/batch", batch.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_same_results(&r.json(), &theirs, str::to_string);
}
