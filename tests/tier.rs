//! End-to-end tests of `ssrd up`: the real nginx, haproxy and workers on
//! free loopback ports, driven with real HTTP, signals and kill -9.

mod common;

use std::time::{Duration, Instant};

use common::{bench_fixture, bundle, kill, Load, LogEvent, Tier};
use serde_json::json;

fn small_batch() -> Vec<u8> {
    bench_fixture("batch-small.json")
}

#[test]
fn tier_serves_ping_batch_render_health_and_metrics() {
    let tier = Tier::start(2, &bundle("server.js"), &[]);
    assert_eq!(tier.ready["ready"], true);

    // /ping is nginx's own answer: haproxy never sees it.
    let sessions = |t: &Tier| -> u64 {
        t.haproxy_servers()
            .iter()
            .map(|r| r["stot"].parse::<u64>().unwrap_or(0))
            .sum()
    };
    let before = sessions(&tier);
    let ping = common::get(tier.port, "/ping");
    assert_eq!((ping.status, ping.text().as_str()), (200, "PONG"));
    assert_eq!(ping.header("server"), Some("nginx"));
    assert_eq!(sessions(&tier), before, "no worker saw /ping");

    let r = common::post(tier.port, "/batch", &small_batch());
    assert_eq!(r.status, 200);
    let v = r.json();
    for token in ["0", "1", "2", "3"] {
        assert_eq!(v["results"][token]["statusCode"], 200, "{token}");
    }
    assert!(
        r.header("x-request-id").is_some_and(|id| id.len() >= 16),
        "nginx stamps a request id"
    );

    let html = common::post(tier.port, "/render/HelloWorld", br#"{"name":"tier"}"#);
    assert_eq!(html.status, 200);
    assert!(html.text().contains("tier"));

    let health = common::get(tier.port, "/health");
    assert_eq!(health.status, 200, "{}", health.text());

    // Concurrent load: haproxy never gives a worker more than one request.
    let load = Load::start(tier.port, small_batch(), 6);
    std::thread::sleep(Duration::from_secs(2));
    let stats = load.stop();
    assert_eq!(stats.failed, 0, "{:?}", stats.samples);
    assert_eq!(stats.refused, 0, "{stats:?}");
    assert!(stats.ok > 20, "{stats:?}");
    for row in tier.haproxy_servers() {
        assert_eq!(
            row["smax"], "1",
            "{}: at most one request at a time",
            row["svname"]
        );
        assert!(
            row["stot"].parse::<u64>().unwrap() > 0,
            "{} served",
            row["svname"]
        );
    }

    let metrics = tier.metrics();
    for name in [
        "ssrd_render_duration_seconds_bucket{component=\"SearchBar\"",
        "ssrd_queue_wait_seconds_count",
        "ssrd_batch_jobs_count",
        "ssrd_jobs_total{outcome=\"ok\"}",
        "ssrd_workers{state=\"ready\"} 2",
        "ssrd_worker_heap_bytes{worker=\"w1\"}",
        "ssrd_haproxy_queue_length",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    // Workers send request events in batches (at most 10 ms late): every
    // job is counted soon after its answer.
    let ok_jobs = || -> f64 {
        tier.metrics()
            .lines()
            .find(|l| l.starts_with("ssrd_jobs_total{outcome=\"ok\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while ok_jobs() < (stats.ok * 4) as f64 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        ok_jobs() >= (stats.ok * 4) as f64,
        "every job counted: {}",
        ok_jobs()
    );
    promtool_accepts(&metrics);
}

/// `promtool check metrics` must accept the exposition. CI installs
/// promtool and sets SSRD_REQUIRE_PROMTOOL=1 so this check cannot be skipped.
fn promtool_accepts(metrics: &str) {
    use std::io::Write;
    let spawned = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(_) if std::env::var_os("SSRD_REQUIRE_PROMTOOL").is_none() => {
            eprintln!("promtool not installed: metric lint skipped");
            return;
        }
        Err(e) => panic!("promtool required but not runnable: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_worker_option_of_ssrd_up_reaches_the_workers() {
    let tier = Tier::start(
        2,
        &bundle("server.js"),
        &[
            "--semi-space-mb",
            "8",
            "--render-timeout-ms",
            "1500",
            "--heap-limit-mb",
            "128",
            "--max-body-mb",
            "3",
            "--v8-flags",
            "--max-lazy",
            "--snapshot",
            "false",
            "--max-html-mb",
            "7",
            "--request-budget-ms",
            "4000",
            "--isolation",
            "request",
        ],
    );
    for port in &tier.worker_ports {
        let stats = common::get(*port, "/stats").json();
        let s = &stats["settings"];
        assert_eq!(s["semi_space_mb"], 8, "{stats}");
        assert_eq!(s["render_timeout_ms"], 1500, "{stats}");
        assert_eq!(s["heap_limit_mb"], 128, "{stats}");
        assert_eq!(s["max_body_bytes"], 3 << 20, "{stats}");
        assert_eq!(s["v8_flags"], "--max-lazy", "{stats}");
        assert_eq!(s["snapshot"], serde_json::Value::Null, "{stats}");
        assert_eq!(s["max_html_mb"], 7, "{stats}");
        assert_eq!(s["request_budget_ms"], 4000, "{stats}");
        assert_eq!(s["isolation"], "request", "{stats}");
        assert_eq!(s["rss_limit_mb"], 1024, "{stats}");
    }
}

#[test]
fn kill_dash_9_of_a_worker_fails_no_request() {
    let mut tier = Tier::start(2, &bundle("server.js"), &[]);
    let load = Load::start(tier.port, small_batch(), 4);
    std::thread::sleep(Duration::from_millis(800));
    let victim = tier.worker_pids()["w1"];
    kill(victim, "9");
    let died = tier.wait_log(LogEvent::WorkerDiedReplaced, 0, Duration::from_secs(5));
    assert_eq!(died["reason"], "crash");
    assert_eq!(died["worker_pid"], victim);
    // Back in rotation after the restart; the slot never left it.
    tier.wait_log(LogEvent::WorkerInRotation, 2, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let stats = load.stop();
    eprintln!("kill -9 of a worker under load: {stats:?}");
    assert_eq!(stats.failed, 0, "failed requests: {:?}", stats.samples);
    assert_eq!(stats.refused, 0);
    assert!(stats.ok > 50);
    assert_eq!(tier.server_status("w1"), "no check", "w1 in rotation");
    assert_ne!(tier.worker_pids()["w1"], victim, "a new process serves w1");
    assert!(tier
        .metrics()
        .contains("ssrd_worker_restarts_total{reason=\"crash\"} 1"));
}

#[test]
fn reload_replaces_every_worker_without_failures() {
    let mut tier = Tier::start(3, &bundle("server.js"), &[]);
    let before = tier.worker_pids();
    let load = Load::start(tier.port, small_batch(), 4);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    // `ssrd reload` finds the supervisor through the pid file in the run dir.
    let out = std::process::Command::new(common::bin())
        .arg("reload")
        .arg("--run-dir")
        .arg(&tier.run_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tier.wait_log(LogEvent::ReloadComplete, 0, Duration::from_secs(60));
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let stats = load.stop();
    eprintln!("reload of 3 workers took {took:?}; load: {stats:?}");
    let after = tier.worker_pids();
    for (w, pid) in &before {
        assert_ne!(after[w], *pid, "{w} replaced");
    }
    assert_eq!(tier.log_events(LogEvent::WorkerReplacing).len(), 3);
    assert_eq!(stats.failed, 0, "failed requests: {:?}", stats.samples);
    assert_eq!(stats.refused, 0, "{stats:?}");
    assert!(stats.ok > 50);
    let m = tier.metrics();
    assert!(m.contains("ssrd_reloads_total{result=\"ok\"} 1"), "{m}");
    assert!(
        m.contains("ssrd_worker_restarts_total{reason=\"reload\"} 3"),
        "{m}"
    );
}

#[test]
fn a_broken_bundle_is_refused_on_reload_and_the_old_one_keeps_serving() {
    let dir = common::tempdir("reload-bad");
    let path = dir.join("bundle.js");
    std::fs::copy(bundle("server.js"), &path).unwrap();
    let mut tier = Tier::start(2, &path, &[]);
    let before = tier.worker_pids();
    std::fs::write(&path, "this is not javascript {").unwrap();
    tier.signal("HUP");
    tier.wait_log(LogEvent::ReloadRejected, 0, Duration::from_secs(60));
    let r = common::post(tier.port, "/batch", &small_batch());
    assert_eq!(r.status, 200);
    assert_eq!(tier.worker_pids(), before, "nobody was replaced");
    assert!(tier
        .metrics()
        .contains("ssrd_reloads_total{result=\"failed\"} 1"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sigterm_answers_every_accepted_request_and_exits_0() {
    let mut tier = Tier::start(2, &bundle("server.js"), &[]);
    let load = Load::start(tier.port, bench_fixture("batch-large.json"), 4);
    std::thread::sleep(Duration::from_millis(1500));
    load.shutting_down();
    tier.signal("TERM");
    let code = tier.wait_exit(Duration::from_secs(45));
    let stats = load.stop();
    eprintln!("SIGTERM under load: {stats:?}");
    assert_eq!(code, Some(0), "clean exit");
    assert_eq!(
        stats.failed, 0,
        "accepted but not answered: {:?}",
        stats.samples
    );
    // A clean stop is not a crash.
    tier.wait_log(LogEvent::TierStopped, 0, Duration::from_secs(5));
    let stopped = tier.log_events(LogEvent::WorkerStopped);
    assert_eq!(stopped.len(), 2, "{stopped:?}");
    assert!(
        stopped
            .iter()
            .all(|e| e["reason"].is_null() && e["status"] == "exit code 0"),
        "{stopped:?}"
    );
    assert!(stats.ok > 5, "{stats:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", tier.port)).is_err(),
        "nginx is gone"
    );
    for port in &tier.worker_ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", *port)).is_err(),
            "worker on {port} is gone"
        );
    }
}

#[test]
fn heap_exhaustion_and_runaways_cost_no_healthy_request() {
    let mut tier = Tier::start(
        2,
        &bundle("faults.js"),
        // Heap-share recycling off (100 %): this test wants the hard limit.
        &[
            "--heap-limit-mb",
            "64",
            "--recycle-heap-percent",
            "100",
            // Long enough that a leaking render (24 MB filled, then a GC
            // near the limit) rarely times out on a slow, busy CI machine:
            // a render that times out keeps nothing, so a worker whose
            // leaks keep timing out never reaches its limit.
            "--render-timeout-ms",
            "1000",
        ],
    );
    let load = Load::start(tier.port, small_batch(), 3);
    // A runaway render answers RenderTimeout, through the whole tier.
    let r = common::post(
        tier.port,
        "/batch",
        json!({"0": {"name": "Runaway"}}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["results"]["0"]["error"]["name"], "RenderTimeout");
    // Leak until a worker exhausts its heap: it answers, exits 75, and is
    // replaced at once.
    let mut exhausted = false;
    // Near the limit, garbage collection can stretch a leaking render past
    // the deadline; those answers are RenderTimeout, counted below.
    // (Each request differs: three timeouts of the same one would
    // quarantine it, which reliability.rs tests.)
    let mut leak_timeouts = 0;
    for i in 0..60 {
        let leak = json!({"0": {"name": "Leak", "data": {"mb": 24, "n": i}}}).to_string();
        let r = common::post(tier.port, "/batch", leak.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        let error = &r.json()["results"]["0"]["error"]["name"];
        if error == "HeapLimitExceeded" {
            exhausted = true;
            break;
        }
        if error == "RenderTimeout" {
            leak_timeouts += 1;
        }
    }
    assert!(exhausted, "a leaking render was answered HeapLimitExceeded");
    // It is replaced (whether it was already being recycled for its heap
    // share when it exited or not), and both workers serve again.
    let metric = |m: &str, name: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = tier.metrics();
        if metric(&m, "ssrd_worker_restarts_total{reason=\"heap_limit\"}") >= 1
            && metric(&m, "ssrd_workers{state=\"ready\"}") == 2
        {
            break;
        }
        assert!(Instant::now() < deadline, "not replaced: {m}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let exited = tier.log_events(LogEvent::WorkerHeapLimitExit);
    let died = tier.log_events(LogEvent::WorkerDiedRestartNow);
    assert!(
        exited
            .iter()
            .chain(died.iter())
            .any(|e| e["reason"] == "heap_limit" && e["status"] == "exit code 75"),
        "{exited:?} {died:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let stats = load.stop();
    eprintln!("heap exhaustion under load: {stats:?}; leaks that timed out: {leak_timeouts}");
    assert_eq!(
        stats.failed, 0,
        "healthy requests failed: {:?}",
        stats.samples
    );
    assert_eq!(stats.refused, 0, "{stats:?}");
    let m = tier.metrics();
    // Leaks land on whichever worker is free, so the second worker may run
    // out of heap too (or be recycled first): at least one exit on the
    // limit, every one of them replaced, and no healthy request lost.
    let heap_limit_exits: u64 = m
        .lines()
        .find(|l| l.starts_with("ssrd_worker_restarts_total{reason=\"heap_limit\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(heap_limit_exits >= 1, "{m}");
    // Every timeout a client saw is counted. The metric counts renders, the
    // client answers, and on a slow CI machine they differed: 17 counted
    // for 16 answered, with 4 heap-limit exits (which render went
    // unanswered was not pinned down; a worker that leaves at its limit is
    // the one event that can drop an answer). So: at most one extra per
    // exit.
    let seen = 1 + leak_timeouts;
    let counted = metric(&m, "ssrd_jobs_total{outcome=\"timeout\"}");
    eprintln!("timeouts answered {seen}, counted {counted}; heap-limit exits {heap_limit_exits}");
    assert!(
        (seen..=seen + heap_limit_exits).contains(&counted),
        "timeouts answered {seen}, counted {counted}, exits {heap_limit_exits}:\n{m}"
    );
}

#[test]
fn workers_are_recycled_by_request_count_without_failures() {
    let mut tier = Tier::start(2, &bundle("server.js"), &["--recycle-requests", "60"]);
    let load = Load::start(tier.port, small_batch(), 3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tier
        .log_events(LogEvent::WorkerReplacing)
        .iter()
        .filter(|e| e["reason"] == "requests")
        .count()
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "fewer than 3 request-count recycles"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = load.stop();
    eprintln!("request-count recycling under load: {stats:?}");
    assert_eq!(stats.failed, 0, "failed requests: {:?}", stats.samples);
    assert_eq!(stats.refused, 0, "{stats:?}");
    // Each recycle was due at its own jittered quota: 60 ±20 %.
    let due: Vec<(u64, u64)> = tier
        .log_events(LogEvent::WorkerDue)
        .iter()
        .filter(|e| e["reason"] == "requests")
        .map(|e| {
            (
                e["requests"].as_u64().unwrap(),
                e["quota"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(due.len() >= 3, "{due:?}");
    assert!(
        due.iter().all(|(n, q)| n == q && (48..=72).contains(q)),
        "{due:?}"
    );
}

#[test]
fn a_growing_heap_is_recycled_before_it_is_exhausted() {
    // A slow leak (4 MB every 100 ms) against a 30 % soft limit of 128 MB:
    // the recycle is due at ~38 MB, with seconds to spare before the hard limit.
    let mut tier = Tier::start(
        2,
        &bundle("faults.js"),
        &["--heap-limit-mb", "128", "--recycle-heap-percent", "30"],
    );
    let leak = json!({"0": {"name": "Leak", "data": {"mb": 4}}}).to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tier
        .log_events(LogEvent::WorkerReplacing)
        .iter()
        .any(|e| e["reason"] == "heap")
    {
        assert!(Instant::now() < deadline, "no heap recycle");
        let r = common::post(tier.port, "/batch", leak.as_bytes());
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json()["results"]["0"]["statusCode"],
            200,
            "recycled before the hard limit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    tier.wait_log(LogEvent::WorkerInRotation, 2, Duration::from_secs(20));
    let r = common::post(tier.port, "/batch", &small_batch());
    assert_eq!(r.status, 200);
    assert!(tier
        .metrics()
        .contains("ssrd_worker_restarts_total{reason=\"heap\"} 1"));
}

/// A bundle whose every render fails in processes started after
/// `bomb_at` (Unix ms): warm-up included, so such a worker never gets ready.
fn time_bomb_bundle(bomb_at: u128) -> String {
    format!(
        "globalThis.ssrd = {{ render(name) {{ if (performance.timeOrigin > {bomb_at}) throw new Error('too late'); return '<p>' + name + '</p>'; }}, warmup: [{{ name: 'Warm', props: {{}} }}] }};"
    )
}

#[test]
fn a_worker_that_cannot_start_is_restarted_with_growing_backoff() {
    let dir = common::tempdir("backoff");
    let path = dir.join("bundle.js");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    std::fs::write(&path, time_bomb_bundle(now_ms + 4000)).unwrap();
    let mut tier = Tier::start(2, &path, &[]);
    // Past the bomb's time, a serving worker dies: its replacements cannot
    // get through warm-up, and are restarted ever more slowly.
    std::thread::sleep(Duration::from_millis(
        (now_ms + 4500).saturating_sub(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        ) as u64,
    ));
    let victim = tier.worker_pids()["w1"];
    kill(victim, "9");
    tier.wait_log(LogEvent::WorkerRestartScheduled, 2, Duration::from_secs(20));
    let delays: Vec<u64> = tier
        .log_events(LogEvent::WorkerRestartScheduled)
        .iter()
        .map(|e| e["delay_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(&delays[..3], &[100, 200, 400], "{delays:?}");
    assert!(tier
        .log_events(LogEvent::WorkerDiedBackoff)
        .iter()
        .all(|e| e["reason"] == "bundle"));
    // w2 keeps serving meanwhile.
    let r = common::post(
        tier.port,
        "/batch",
        json!({"0": {"name": "X"}}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"]["0"]["html"], "<p>X</p>");
    // A good bundle, reloaded, brings w1 back.
    std::fs::copy(bundle("server.js"), &path).unwrap();
    tier.signal("HUP");
    tier.wait_log(LogEvent::ReloadComplete, 0, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tier.metrics().contains("ssrd_workers{state=\"ready\"} 2") {
        assert!(Instant::now() < deadline, "{}", tier.metrics());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        common::post(tier.port, "/batch", &small_batch()).status,
        200
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_hung_worker_is_killed_and_replaced() {
    let mut tier = Tier::start(
        2,
        &bundle("server.js"),
        &[
            "--render-timeout-ms",
            "200",
            "--heartbeat-timeout-ms",
            "1000",
        ],
    );
    let victim = tier.worker_pids()["w2"];
    kill(victim, "STOP");
    let killed = tier.wait_log(LogEvent::WorkerKilled, 0, Duration::from_secs(10));
    assert_eq!(killed["worker_pid"], victim);
    assert_eq!(killed["reason"], "hung");
    tier.wait_log(LogEvent::WorkerInRotation, 2, Duration::from_secs(20));
    assert_ne!(tier.worker_pids()["w2"], victim);
    assert!(tier
        .metrics()
        .contains("ssrd_worker_restarts_total{reason=\"hung\"} 1"));
    let r = common::post(tier.port, "/batch", &small_batch());
    assert_eq!(r.status, 200);
}

#[test]
fn missing_binaries_busy_ports_and_bad_bundles_fail_at_once_with_a_message() {
    let run = |args: &[&str]| {
        // Failing at once: within 30 s, or the test fails (never hangs).
        let child = std::process::Command::new(common::bin())
            .arg("up")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = common::wait_output(child, Duration::from_secs(30));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let base = common::free_block(8);
    let ports = |b: u16| {
        vec![
            "--port".to_string(),
            b.to_string(),
            "--haproxy-port".into(),
            (b + 1).to_string(),
            "--stats-port".into(),
            (b + 2).to_string(),
            "--metrics-port".into(),
            (b + 3).to_string(),
            "--worker-base-port".into(),
            (b + 4).to_string(),
            "--workers".into(),
            "2".into(),
            "--bundle".into(),
            bundle("server.js").display().to_string(),
            "--run-dir".into(),
            std::env::temp_dir()
                .join(format!("ssrd-pre-{b}"))
                .display()
                .to_string(),
        ]
    };
    let mut args = ports(base);
    args.extend(["--nginx".into(), "/nonexistent/nginx".into()]);
    let (code, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(1));
    assert!(err.contains("apt-get install -y nginx"), "{err}");

    let mut args = ports(base);
    args.extend(["--haproxy".into(), "/nonexistent/haproxy".into()]);
    let (code, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(1));
    assert!(err.contains("apt-get install -y haproxy"), "{err}");

    let taken = std::net::TcpListener::bind(("127.0.0.1", base + 5)).unwrap();
    let args = ports(base);
    let (code, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("port {} for worker 2", base + 5)),
        "{err}"
    );
    drop(taken);

    let mut args = ports(base);
    let pos = args.iter().position(|a| a == "--bundle").unwrap();
    args[pos + 1] = common::fixture("no-contract.js").display().to_string();
    let (code, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(3));
    assert!(err.contains("did not set globalThis.ssrd"), "{err}");

    // A bundle that loads but whose warm-up render throws: the check's
    // second half fails while the tier is already starting (up.rs), and
    // `up` still exits 3 with the bundle's error, leaving nothing behind:
    // every port it held is free again.
    let dir = common::tempdir("warmup-throws");
    let throws = dir.join("warmup-throws.js");
    std::fs::write(
        &throws,
        "globalThis.ssrd = { render() { throw new Error('boom in warm-up'); }, \
         warmup: [{ name: 'Warm', props: {} }] };",
    )
    .unwrap();
    let mut args = ports(base);
    let pos = args.iter().position(|a| a == "--bundle").unwrap();
    args[pos + 1] = throws.display().to_string();
    let (code, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("warm-up render of") && err.contains("boom in warm-up"),
        "{err}"
    );
    for port in [base, base + 1, base + 2, base + 3, base + 4, base + 5] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} still held after up exited: {err}"
        );
    }

    let (code, err) = run(&["--workers", "0"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--workers") && err.contains("1..=512"),
        "{err}"
    );
}

/// `up` killed (SIGKILL: no clean-up of its own runs) while it checks a
/// bundle that never finishes loading: its `ssrd snapshot` child dies with
/// it instead of spinning on a core until its two-minute timeout.
#[test]
fn a_killed_up_takes_its_bundle_check_with_it() {
    let dir = common::tempdir("check-orphan");
    let spins = dir.join("spins-at-load.js");
    std::fs::write(&spins, "for (;;) {}\n").unwrap();
    let base = common::free_block(8);
    let run_dir = dir.join("run");
    let mut up = std::process::Command::new(common::bin())
        .args(["up", "--workers", "1", "--bundle"])
        .arg(&spins)
        .arg("--run-dir")
        .arg(&run_dir)
        .args(["--port", &base.to_string()])
        .args(["--haproxy-port", &(base + 1).to_string()])
        .args(["--stats-port", &(base + 2).to_string()])
        .args(["--metrics-port", &(base + 3).to_string()])
        .args(["--worker-base-port", &(base + 4).to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let needle = format!("snapshot --bundle {}", run_dir.display());
    common::wait_until(
        "up to start its bundle check",
        Duration::from_secs(20),
        || !common::processes_with(&needle).is_empty(),
    );
    common::kill(i64::from(up.id()), "KILL");
    let _ = up.wait();
    common::wait_until(
        "the bundle check to die with up",
        Duration::from_secs(5),
        || common::processes_with(&needle).is_empty(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn generated_configs_pass_nginx_t_and_haproxy_c_for_both_balance_modes() {
    for balance in ["first", "static-rr"] {
        let dir =
            std::env::temp_dir().join(format!("ssrd-config-{}-{balance}", std::process::id()));
        let out = std::process::Command::new(common::bin())
            .args([
                "config",
                "--check",
                "--workers",
                "3",
                "--balance",
                balance,
                "--run-dir",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{balance}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("balance {balance}")));
        assert!(stdout.contains("server w3 127.0.0.1:9004 maxconn 1 disabled"));
        assert!(stdout.contains("option redispatch") && stdout.contains("retries 3"));
        // abortonclose drops queued requests whose caller left; one already
        // at a worker keeps its connection (and the worker's slot) until
        // the worker answers, so one request per worker still holds.
        assert!(stdout
            .lines()
            .any(|l| l.trim_start().starts_with("option abortonclose")));
        assert!(stdout.contains("mode http"));
        let _ = std::fs::remove_dir_all(dir);
    }
    // A config file, overridden by a flag.
    let dir = std::env::temp_dir().join(format!("ssrd-config-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ssrd.toml");
    std::fs::write(&file, "workers = 2\nport = 9500\nbalance = \"static-rr\"\n").unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["config", "--port", "9600", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("listen 127.0.0.1:9600"),
        "flag wins over file"
    );
    assert!(
        stdout.contains("balance static-rr"),
        "file wins over default"
    );
    assert!(stdout.contains("server w2 ") && !stdout.contains("server w3 "));
    std::fs::write(&file, "wrokers = 2\n").unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrokers"));
    let _ = std::fs::remove_dir_all(dir);
}

/// A V8 flag the workers would refuse (each exiting at start, replaced,
/// refusing again) stops `up` before anything starts, saying which flag.
#[test]
fn up_refuses_unknown_v8_flags_before_starting_anything() {
    let dir = std::env::temp_dir().join(format!("ssrd-v8-flags-{}", std::process::id()));
    let child = std::process::Command::new(common::bin())
        .args([
            "up",
            "--workers",
            "1",
            "--v8-flags=--max-lazy --no-such-v8-flag",
        ])
        .arg("--run-dir")
        .arg(&dir)
        .arg("--bundle")
        .arg(common::bundle("faults.js"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = common::wait_output(child, Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let unknown = stderr.split("know these flags:").nth(1).unwrap_or_default();
    assert_eq!(unknown.trim(), "--no-such-v8-flag", "{stderr}");
    assert!(out.stdout.is_empty(), "nothing started, no ready line");
}

#[test]
fn shipped_alert_rules_pass_promtool() {
    let rules = common::root().join("docs/alerts.yml");
    let text = std::fs::read_to_string(&rules).unwrap();
    for needed in [
        "severity: warning",
        "severity: critical",
        "SsrdWorkersBelowMinimum",
        "SsrdNoWorkerReady",
    ] {
        assert!(text.contains(needed), "{needed}");
    }
    match std::process::Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(e) if std::env::var_os("SSRD_REQUIRE_PROMTOOL").is_some() => {
            panic!("promtool required: {e}")
        }
        Err(_) => eprintln!("promtool not installed: rule check skipped"),
    }
}

/// Sends `size` bytes of body the way most HTTP clients do (no `Expect:
/// 100-continue`: the whole upload, then the answer). Returns whether the
/// upload could be written in full, and the answer.
fn upload(port: u16, path: &str, size: usize) -> (Result<(), String>, Option<common::Resp>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    );
    let body = vec![b' '; size];
    let wrote = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(&body))
        .map_err(|e| e.to_string());
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    (wrote, common::parse_response(&buf))
}

#[test]
fn failures_the_tier_answers_itself_come_in_one_form_and_uploads_are_read_first() {
    let tier = Tier::start(
        1,
        &common::fixture("gem-app.js"),
        &[
            "--max-body-mb",
            "1",
            "--upstream-timeout-ms",
            "3000",
            "--request-budget-ms",
            "1000",
        ],
    );
    // An upload over the limit, through nginx and straight to a worker:
    // each reads it (so the client's write succeeds) and answers 413.
    for (who, port) in [("nginx", tier.port), ("worker", tier.worker_ports[0])] {
        let (wrote, answer) = upload(port, "/batch", 3 << 20);
        assert_eq!(wrote, Ok(()), "{who}: the upload was cut off");
        let answer = answer.unwrap_or_else(|| panic!("{who}: no answer"));
        assert_eq!(answer.status, 413, "{who}: {}", answer.text());
        assert_eq!(answer.error_kind(), "PayloadTooLarge", "{who}");
    }
    // Routes and methods, answered by the worker through the tier.
    let r = common::get(tier.port, "/nope");
    assert_eq!((r.status, r.error_kind().as_str()), (404, "NotFound"));
    let r = common::get(tier.port, "/batch");
    assert_eq!(
        (r.status, r.error_kind().as_str()),
        (405, "MethodNotAllowed")
    );
    let r = common::post(tier.port, "/batch", b"{not json");
    assert_eq!((r.status, r.error_kind().as_str()), (400, "BadRequest"));
    // Headers nginx cannot read.
    let huge = format!(
        "GET /batch HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "y".repeat(64 << 10)
    );
    let r = common::request(tier.port, huge.as_bytes());
    assert_eq!((r.status, r.error_kind().as_str()), (400, "BadRequest"));
    // A worker that stops answering at all (SIGSTOP): nginx or haproxy
    // gives up at the upstream timeout, in the same form.
    let pid = common::get(tier.worker_ports[0], "/stats").json()["pid"]
        .as_i64()
        .unwrap();
    kill(pid, "STOP");
    let started = Instant::now();
    let r = common::post(
        tier.port,
        "/batch",
        br#"{"0":{"name":"Greeting","data":{"name":"x"}}}"#,
    );
    kill(pid, "CONT");
    assert!(matches!(r.status, 502 | 504), "{}: {}", r.status, r.text());
    assert!(matches!(
        r.error_kind().as_str(),
        "Unavailable" | "UpstreamTimeout"
    ));
    assert!(started.elapsed() < Duration::from_secs(10));
}
