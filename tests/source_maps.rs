//! Failed jobs' stacks in the author's own files (issue 18): the example
//! bundle is built with a source map beside it, and a `Throws` job's
//! `error.stack` names `js-bundle/src/faults-entry.js` and the line that
//! throws, through the whole tier (nginx → haproxy → a worker started from
//! the bundle store's copy) and through `ssrd render`. A bundle without its
//! map answers the unmapped stack, as before; a corrupt or oversized map
//! changes nothing but one log line.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{bin, bundle, root, tempdir, LogEvent, Tier, Worker, TIMEOUT};
use serde_json::{json, Value};

/// `faults.js`'s map, built beside it by `npm run build`.
fn faults_map() -> PathBuf {
    let map = bundle("faults.js").with_extension("js.map");
    assert!(
        map.is_file(),
        "{} is missing: rebuild the JS bundle (cd js-bundle && npm run build)",
        map.display()
    );
    map
}

/// The line (1-based) of `Throws`'s `throw` in faults.js's source.
fn throws_line() -> usize {
    let source = std::fs::read_to_string(root().join("js-bundle/src/faults-entry.js")).unwrap();
    let lines: Vec<&str> = source.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("function Throws("))
        .expect("function Throws in faults-entry.js");
    start
        + 1
        + lines[start..]
            .iter()
            .position(|l| l.contains("throw new Error"))
            .expect("Throws throws")
}

/// faults.js copied into a directory of its own, with `map` (if any) as
/// its `.map`.
fn faults_copy(tag: &str, map: Option<&[u8]>) -> PathBuf {
    let dir = tempdir(tag);
    let js = dir.join("faults.js");
    std::fs::copy(bundle("faults.js"), &js).unwrap();
    if let Some(map) = map {
        std::fs::write(dir.join("faults.js.map"), map).unwrap();
    }
    js
}

fn throws_batch() -> Vec<u8> {
    json!({"0": {"name": "Throws", "data": {}}, "1": {"name": "HelloWorld", "data": {"name": "x"}}})
        .to_string()
        .into_bytes()
}

/// The `Throws` job's stack from a `/batch` answer (the other job must
/// have rendered).
fn throws_stack(answer: &Value) -> Vec<String> {
    assert_eq!(answer["results"]["1"]["success"], true, "{answer}");
    let error = &answer["results"]["0"]["error"];
    assert_eq!(error["message"], "Throws: this component always fails");
    error["stack"]
        .as_array()
        .unwrap_or_else(|| panic!("no stack: {answer}"))
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

/// The stack's second line names Throws in faults-entry.js at the line
/// that throws.
fn assert_mapped(stack: &[String]) {
    let want = format!("src/faults-entry.js:{}:", throws_line());
    assert_eq!(stack[0], "Error: Throws: this component always fails");
    assert!(
        stack[1].starts_with("at Throws (") && stack[1].contains(&want),
        "the top frame should be Throws at {want}: {stack:#?}"
    );
    assert!(
        stack.iter().any(|f| f.contains("node_modules/react-dom/")),
        "React's frames are mapped too: {stack:#?}"
    );
}

/// The stack as V8 wrote it: frames in the bundle (`bundle_name`, as the
/// worker names it), none in the original sources.
fn assert_unmapped(stack: &[String], bundle_name: &str) {
    assert_eq!(stack[0], "Error: Throws: this component always fails");
    assert!(
        stack[1].contains(bundle_name) && stack[1].contains(".js:"),
        "{stack:#?}"
    );
    assert!(
        !stack.iter().any(|f| f.contains("faults-entry.js")),
        "{stack:#?}"
    );
}

#[test]
fn the_tier_answers_a_throws_jobs_stack_in_the_authors_source() {
    faults_map();
    let mut tier = Tier::start(2, &bundle("faults.js"), &[]);
    // The store's copy of the bundle has its map beside it.
    let stored = std::fs::read_dir(tier.run_dir.join("bundles"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    assert!(stored.iter().any(|n| n.ends_with(".js.map")), "{stored:?}");
    // Every worker (each parses the map on its first failed job).
    for _ in 0..4 {
        let r = common::post(tier.port, "/batch", &throws_batch());
        assert_eq!(r.status, 200);
        assert_mapped(&throws_stack(&r.json()));
    }
    let line = tier.wait_log(LogEvent::JobFailed, 0, TIMEOUT);
    assert!(
        line["stack"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("src/faults-entry.js:{}:", throws_line()))),
        "the job_failed line carries the mapped stack: {line}"
    );
    assert!(tier.log_events(LogEvent::SourceMapUnusable).is_empty());
}

#[test]
fn without_its_map_the_tier_answers_the_stack_as_before_and_a_reload_brings_the_map() {
    let js = faults_copy("tier-nomap", None);
    let mut tier = Tier::start(1, &js, &[]);
    let r = common::post(tier.port, "/batch", &throws_batch());
    assert_eq!(r.status, 200);
    assert_unmapped(&throws_stack(&r.json()), "/bundles/");
    // The map appears beside the file and the bundle changes (a comment
    // after the code: the map still fits): the reload's checked path
    // carries the map into the store with the new bundle.
    std::fs::copy(faults_map(), js.with_extension("js.map")).unwrap();
    let mut code = std::fs::read(&js).unwrap();
    code.extend_from_slice(b"\n// rebuilt\n");
    std::fs::write(&js, code).unwrap();
    tier.signal("HUP");
    tier.wait_log(LogEvent::ReloadComplete, 0, TIMEOUT);
    let r = common::post(tier.port, "/batch", &throws_batch());
    assert_mapped(&throws_stack(&r.json()));
}

/// `ssrd render NAME` for the faults bundle at `js`: its exit code and
/// the failed job's JSON on stderr.
fn render_throws(js: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let out = Command::new(bin())
        .args(["render", "--bundle"])
        .arg(js)
        .args(extra)
        .arg("Throws")
        .output()
        .expect("ssrd render");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("stderr's last line is not JSON ({e}): {stderr}"));
    (out.status.code(), v)
}

#[test]
fn ssrd_render_prints_the_mapped_stack() {
    faults_map();
    for extra in [&[][..], &["--isolation", "request", "--repeat", "2"][..]] {
        let (code, v) = render_throws(&bundle("faults.js"), extra);
        assert_eq!(code, Some(1));
        assert_eq!(v["statusCode"], 500);
        let stack: Vec<String> = serde_json::from_value(v["error"]["stack"].clone()).unwrap();
        assert_mapped(&stack);
    }
    let js = faults_copy("render-nomap", None);
    let (code, v) = render_throws(&js, &[]);
    assert_eq!(code, Some(1));
    let stack: Vec<String> = serde_json::from_value(v["error"]["stack"].clone()).unwrap();
    assert_unmapped(&stack, &js.display().to_string());
}

#[test]
fn a_corrupt_or_oversized_map_leaves_the_stack_unmapped_and_the_worker_serving() {
    let oversized = {
        let js = faults_copy("oversized-map", None);
        let f = std::fs::File::create(js.with_extension("js.map")).unwrap();
        f.set_len(ssrd_worker::stack_map::MAX_MAP_BYTES + 1)
            .unwrap();
        js
    };
    let truncated = {
        let map = std::fs::read(faults_map()).unwrap();
        faults_copy("truncated-map", Some(&map[..map.len() / 2]))
    };
    for js in [
        faults_copy("corrupt-map", Some(b"\x00\xffnot a source map{{{")),
        faults_copy(
            "wrong-map",
            Some(br#"{"version":3,"sources":["a.js"],"mappings":"%%%%;;;gggg"}"#),
        ),
        truncated,
        oversized,
    ] {
        let mut w = Worker::start(&js, &[]);
        for _ in 0..3 {
            let v = w.batch(&serde_json::from_slice(&throws_batch()).unwrap());
            assert_unmapped(&throws_stack(&v), &js.display().to_string());
        }
        let hello = w.post("/render/HelloWorld", b"{}");
        assert_eq!(hello.status, 200, "the worker still renders");
        assert!(w.alive());
        std::thread::sleep(Duration::from_millis(200));
        let lines = w.stderr_lines();
        let unusable = common::events_in(&lines, LogEvent::SourceMapUnusable);
        assert_eq!(unusable.len(), 1, "said once: {lines:#?}");
        assert!(
            unusable[0]["map"]
                .as_str()
                .is_some_and(|m| m.ends_with("faults.js.map")),
            "{}",
            unusable[0]
        );
    }
}
