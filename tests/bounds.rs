//! Bounds on everything a caller or a bundle can push (issue 23): log
//! lines, slow bodies in nginx, metric labels, header values, options that
//! would start a tier that can never serve, jobs per batch. Each attack runs
//! beside healthy load, which must lose nothing.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{fixture, Load, LogEvent, Tier, Worker};
use serde_json::json;

fn small_batch() -> Vec<u8> {
    json!({"0": {"name": "Hello"}}).to_string().into_bytes()
}

#[test]
fn log_lines_have_a_size_cap_and_repeats_are_counted_not_written() {
    let w = Worker::start(
        &fixture("hostile.js"),
        &["--max-html-mb", "64", "--heap-limit-mb", "512"],
    );
    // 7 requests, each a 30 MB message; then a 50-job batch of them.
    for _ in 0..7 {
        let r = w.post("/batch", br#"{"0":{"name":"HugeError","data":{"mb":30}}}"#);
        assert_eq!(r.status, 200);
        assert!(r.body.len() < 64 * 1024, "{} bytes answered", r.body.len());
    }
    let batch: serde_json::Map<String, serde_json::Value> = (0..50)
        .map(|i| {
            (
                i.to_string(),
                json!({"name": "HugeError", "data": {"mb": 1}}),
            )
        })
        .collect();
    let r = w.post(
        "/batch",
        serde_json::Value::Object(batch).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body.len() < 50 * 40 * 1024,
        "{} bytes answered",
        r.body.len()
    );
    std::thread::sleep(Duration::from_millis(200));
    let lines = w.stderr_lines();
    let written: usize = lines.iter().map(|l| l.len() + 1).sum();
    let failed = common::events_in(&lines, LogEvent::JobFailed);
    eprintln!(
        "57 failures of 30 MB / 1 MB messages: {} log lines, {written} bytes, {} 'job failed'",
        lines.len(),
        failed.len()
    );
    assert!(
        written < 64 * 1024,
        "the worker wrote {written} bytes of logs"
    );
    assert_eq!(failed.len(), 1, "repeats held back: {failed:?}");
    assert!(lines.iter().all(|l| l.len() < 8 * 1024));
}

/// Resident memory of nginx (master and workers) for a tier, MiB.
fn nginx_rss_mb(tier: &Tier) -> u64 {
    let master: i32 = std::fs::read_to_string(tier.run_dir.join("nginx.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut kb = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if pid == master || field("PPid:") == master as u64 {
            kb += field("VmRSS:");
        }
    }
    kb / 1024
}

#[test]
fn callers_that_send_bodies_slowly_hold_little_nginx_memory() {
    let tier = Tier::start(2, &fixture("hostile.js"), &["--client-timeout-ms", "20000"]);
    let before = nginx_rss_mb(&tier);
    let load = Load::start(tier.port, small_batch(), 2);
    // 300 callers each send a 5 MB body but its last byte, and hold it.
    let body = vec![b' '; 5 * 1024 * 1024 - 1];
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(("127.0.0.1", tier.port)).unwrap();
        write!(
            s,
            "POST /batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len() + 1
        )
        .unwrap();
        s.write_all(&body).unwrap();
        held.push(s);
    }
    std::thread::sleep(Duration::from_secs(2));
    let during = nginx_rss_mb(&tier);
    drop(held);
    std::thread::sleep(Duration::from_millis(500));
    let after = nginx_rss_mb(&tier);
    let stats = load.stop();
    eprintln!(
        "nginx RSS {before} MiB -> {during} MiB with 300 slow 5 MB bodies -> {after} MiB after; \
         healthy {stats:?}, p99 {:.1} ms",
        stats.p99_between(0.0, 1e9)
    );
    assert!(during < before + 300, "{before} -> {during} MiB");
    assert!(after < before + 300, "{before} -> {after} MiB after");
    assert_eq!((stats.failed, stats.refused), (0, 0), "{stats:?}");
    assert!(stats.ok > 100, "{stats:?}");
}

#[test]
fn metric_labels_and_header_values_stay_small_whatever_callers_send() {
    let tier = Tier::start(2, &fixture("hostile.js"), &["--max-body-mb", "8"]);
    // Names a naive bundle fails with a TypeError, 4 MB each.
    for i in 0..10 {
        let name = format!("{i}{}", "N".repeat(4 << 20));
        let body = json!({"0": {"name": name, "data": {"naive": true}}}).to_string();
        let r = common::post(tier.port, "/batch", body.as_bytes());
        assert_eq!(
            r.status,
            200,
            "{}",
            r.text().chars().take(200).collect::<String>()
        );
    }
    let metrics = tier.metrics();
    eprintln!("/metrics after 10 4 MB names: {} bytes", metrics.len());
    assert!(metrics.len() < 64 * 1024, "{} bytes", metrics.len());
    assert!(metrics.contains("component=\"_unknown\""));
    // An error name of 5 MB: the front answers what the worker said (no
    // 502, no retry on another worker), with a short header.
    let r = common::post(tier.port, "/render/HugeErrorName", br#"{"mb":5}"#);
    assert_eq!(
        r.status,
        500,
        "{}",
        r.text().chars().take(200).collect::<String>()
    );
    assert!(r.error_kind().len() <= 64);
    let r = common::post(tier.port, "/render/HugeErrorName?markup=1", br#"{"mb":5}"#);
    assert_eq!(r.status, 200, "?markup=1 answers the fallback placement");
    assert!(r.header("x-ssrd-fallback").unwrap().len() <= 64);
    assert!(r.text().contains("data-hypernova-key"), "{}", r.text());
    let m = tier.metrics();
    assert!(
        !m.lines()
            .any(|l| l.starts_with("ssrd_worker_restarts_total") && !l.ends_with(" 0")),
        "no worker died: {m}"
    );
}

#[test]
fn options_that_could_never_serve_are_refused_before_anything_starts() {
    for (flag, value) in [
        ("--heap-limit-mb", "100000000"),
        ("--max-html-mb", "0"),
        ("--client-timeout-ms", "0"),
        ("--render-timeout-ms", "0"),
        ("--max-batch-jobs", "0"),
    ] {
        let mut child = std::process::Command::new(common::bin())
            .args(["up", "--workers", "1", "--run-dir"])
            .arg(common::tempdir("bounds-options"))
            .args([flag, value])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ssrd up {flag} {value} was still running after 5 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(!status.success(), "{flag} {value} started");
        let name = flag.trim_start_matches("--");
        assert!(
            stderr.contains(name) || stderr.contains(&name.replace('-', "_")),
            "{stderr}"
        );
        assert!(stderr.contains("..="), "names the range: {stderr}");
    }
}

#[test]
fn a_batch_over_the_job_cap_is_refused_at_once_and_costs_others_nothing() {
    let tier = Tier::start(2, &fixture("hostile.js"), &[]);
    let load = Load::start(tier.port, small_batch(), 2);
    let batch: serde_json::Map<String, serde_json::Value> = (0..100_000)
        .map(|i| (i.to_string(), json!({"name": "Hello"})))
        .collect();
    let body = serde_json::Value::Object(batch).to_string();
    for _ in 0..5 {
        let started = Instant::now();
        let r = common::post(tier.port, "/batch", body.as_bytes());
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.error_kind(), "BadRequest");
        assert!(r.text().contains("more than 1000 jobs"), "{}", r.text());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    let stats = load.stop();
    assert_eq!((stats.failed, stats.refused), (0, 0), "{stats:?}");
    let p99 = stats.p99_between(0.0, 1e9);
    eprintln!("healthy beside 100,000-job batches: {stats:?}, p99 {p99:.1} ms");
    assert!(p99 < 200.0, "p99 {p99} ms");
}

#[test]
fn smaller_ones_transfer_lists_and_a_stop_without_drain() {
    let w = Worker::start(&fixture("hostile.js"), &[]);
    let r = w.batch(&json!({"0": {"name": "TransferBuffer"}}));
    assert_eq!(r["results"]["0"]["html"], "<p>7 0</p>", "{r}");
    drop(w);
    let mut tier = Tier::start(1, &fixture("hostile.js"), &["--drain-seconds", "0"]);
    let started = Instant::now();
    let out = std::process::Command::new(common::bin())
        .args(["stop", "--run-dir"])
        .arg(&tier.run_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("stopping at once (no drain)"), "{stderr}");
    assert!(!stderr.contains("draining for"), "{stderr}");
    assert!(tier.wait_exit(Duration::from_secs(10)).is_some());
    assert!(started.elapsed() < Duration::from_secs(5));
}
