//! A tier that is starting makes requests wait for its first worker rather
//! than fail (issue 20), and a tier where no worker can be in rotation says
//! so at once, with its own error kind.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bundle, fixture, free_block};
use serde_json::json;

/// `ssrd up` with `workers` workers on a free block of ports, not waited for.
fn spawn_up(
    workers: usize,
    bundle: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, u16, u16) {
    let base = free_block(workers + 4);
    let run_dir = common::tempdir(&format!("startup-{base}")).join("run");
    let child = Command::new(common::bin())
        .arg("up")
        .args(["--workers", &workers.to_string()])
        .arg("--bundle")
        .arg(bundle)
        .args(["--port", &base.to_string()])
        .args(["--haproxy-port", &(base + 1).to_string()])
        .args(["--stats-port", &(base + 2).to_string()])
        .args(["--metrics-port", &(base + 3).to_string()])
        .args(["--worker-base-port", &(base + 4).to_string()])
        .arg("--run-dir")
        .arg(&run_dir)
        .args(["--drain-seconds", "0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ssrd up");
    (child, base, base + 4)
}

fn stop(mut child: std::process::Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until the tier's port accepts connections.
fn wait_accepting(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never accepted");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends the README's batch back to back for `for_`: (answers, non-200s).
fn back_to_back(port: u16, for_: Duration, during: impl Fn(usize)) -> (usize, Vec<String>) {
    let body = json!({"0": {"name": "HelloWorld", "data": {"name": "Loft"}}}).to_string();
    let until = Instant::now() + for_;
    let mut sent = 0;
    let mut bad = Vec::new();
    while Instant::now() < until {
        during(sent);
        match common::try_post(port, "/batch", body.as_bytes(), Duration::from_secs(30)) {
            Ok(r) if r.status == 200 && r.text().contains("Loft") => {}
            Ok(r) => bad.push(format!("{}: {}", r.status, r.text())),
            Err(e) => bad.push(e),
        }
        sent += 1;
    }
    (sent, bad)
}

/// Every worker process of the tier (children of the supervisor running
/// `ssrd worker`).
fn worker_pids(supervisor: u32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(supervisor) && cmdline.split('\0').nth(1) == Some("worker") {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn requests_sent_as_soon_as_the_port_accepts_wait_for_the_first_worker() {
    let (child, port, _) = spawn_up(2, &bundle("server.js"), &[]);
    wait_accepting(port);
    let started = Instant::now();
    let (sent, bad) = back_to_back(port, Duration::from_secs(2), |_| {});
    eprintln!(
        "from the first accepted connection, {sent} requests in {:?}: {} not 200",
        started.elapsed(),
        bad.len()
    );
    stop(child);
    assert!(sent > 10, "{sent}");
    assert!(bad.is_empty(), "{bad:?}");
}

#[test]
fn every_worker_killed_right_after_start_costs_no_request() {
    let (child, port, _) = spawn_up(2, &bundle("server.js"), &[]);
    let supervisor = child.id();
    wait_accepting(port);
    let killed = std::cell::Cell::new(false);
    let (sent, bad) = back_to_back(port, Duration::from_secs(2), |n| {
        if n == 1 && !killed.get() {
            let pids = worker_pids(supervisor);
            assert_eq!(pids.len(), 2, "{pids:?}");
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            killed.set(true);
        }
    });
    stop(child);
    assert!(killed.get());
    assert!(sent > 10, "{sent}");
    assert!(bad.is_empty(), "{bad:?}");
}

#[test]
fn with_no_worker_able_to_serve_requests_fail_at_once_saying_why() {
    // A bundle whose warm-up answers 2 MiB: `up`'s check passes (its limit
    // is the default 32), every worker's warm-up fails (1 MiB) and it
    // exits: every slot crash-loops, backing off, none ever in rotation.
    let (child, port, _) = spawn_up(2, &fixture("big-warmup.js"), &["--max-html-mb", "1"]);
    wait_accepting(port);
    std::thread::sleep(Duration::from_millis(1500));
    for _ in 0..5 {
        let started = Instant::now();
        let r = common::post(port, "/batch", br#"{"0":{"name":"Hello"}}"#);
        let took = started.elapsed();
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.error_kind(), "NoWorker");
        assert!(
            r.text().contains("no render worker is in rotation"),
            "{}",
            r.text()
        );
        assert!(took < Duration::from_millis(500), "{took:?}");
    }
    // Each of nginx's two tries is counted.
    let metrics = common::get(port + 3, "/metrics").text();
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("ssrd_refused_requests_total{kind=\"no_worker\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(refused >= 5, "{metrics}");
    stop(child);
}
