//! Logs that cannot fill a disk (issue 22): by default nginx's access log
//! goes to the supervisor's stderr (journald or the container runtime
//! rotates it) and the run dir does not grow with traffic; as a file, it
//! is reopened by `ssrd reopen-logs` after logrotate moved it.

mod common;

use std::time::Duration;

use common::{bundle, Load, Tier};
use serde_json::json;

/// Bytes of every file under `dir`.
fn size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

#[test]
fn by_default_200_000_requests_do_not_grow_the_run_dir() {
    let mut tier = Tier::start(2, &bundle("server.js"), &[]);
    let before = size(&tier.run_dir);
    let body = common::tempdir("logs-body").join("batch.json");
    std::fs::write(
        &body,
        json!({"0": {"name": "HelloWorld", "data": {"name": "Loft"}}}).to_string(),
    )
    .unwrap();
    let out = std::process::Command::new("ab")
        .args([
            "-q",
            "-l",
            "-c",
            "20",
            "-n",
            "200000",
            "-T",
            "application/json",
            "-p",
        ])
        .arg(&body)
        .arg(format!("http://127.0.0.1:{}/batch", tier.port))
        .output()
        .expect("ab (apache2-utils)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("Complete requests:      200000"),
        "{report}"
    );
    assert!(report.contains("Failed requests:        0"), "{report}");
    std::thread::sleep(Duration::from_millis(1500));
    let after = size(&tier.run_dir);
    eprintln!("run dir: {before} -> {after} bytes after 200,000 requests");
    assert!(after < before + 1_000_000, "{before} -> {after}");
    // The access log went to the supervisor's stderr, as JSON lines.
    let logged = tier
        .logs()
        .iter()
        .filter(|l| l.contains("\"msg\":\"request\"") && l.contains("\"uri\":\"/batch\""))
        .count();
    assert!(logged > 190_000, "{logged} access log lines");
}

#[test]
fn a_file_access_log_is_reopened_after_a_move_with_no_request_failed() {
    let dir = common::tempdir("logs-file");
    let log = dir.join("access.log");
    let mut tier = Tier::start(
        2,
        &bundle("server.js"),
        &["--access-log", log.to_str().unwrap()],
    );
    let load = Load::start(
        tier.port,
        json!({"0": {"name": "HelloWorld", "data": {"name": "Loft"}}})
            .to_string()
            .into_bytes(),
        2,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let rotated = dir.join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let out = std::process::Command::new(common::bin())
        .args(["reopen-logs", "--run-dir"])
        .arg(&tier.run_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(2000));
    let stats = load.stop();
    assert_eq!((stats.failed, stats.refused), (0, 0), "{stats:?}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = std::fs::read_to_string(&log).expect("a new access.log after reopen-logs");
    assert!(old.lines().count() > 10, "{}", old.lines().count());
    assert!(new.lines().count() > 10, "{}", new.lines().count());
    assert!(new.lines().all(|l| l.contains("\"msg\":\"request\"")));
    // Nothing of it on stderr.
    assert!(!tier
        .logs()
        .iter()
        .any(|l| l.contains("\"msg\":\"request\"")));
}
