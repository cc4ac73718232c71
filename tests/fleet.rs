//! What running many hosts needs from one: a drain before stopping that a
//! load balancer can follow (`/health` 503 while every request is still
//! served), the bundle's identity wherever an operator looks (`/health`, a
//! header on every answer, a metric), `ssrd stop`, and listen addresses
//! beyond the default ones. Real tiers on loopback (127.0.0.0/8 only).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bench_fixture, bundle, fixture, Load, LogEvent, Tier};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn small_batch() -> Vec<u8> {
    bench_fixture("batch-small.json")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A load balancer's view of one host: polls `/health` every 100 ms and
/// takes the host out of rotation (for good) at the first answer that is
/// not 200, as a readiness probe with failureThreshold 1 would.
struct Balancer {
    in_rotation: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    poller: std::thread::JoinHandle<Option<Value>>,
}

impl Balancer {
    fn follow(port: u16) -> Balancer {
        let in_rotation = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (in_rotation, stop) = (in_rotation.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match common::try_get(port, "/health", Duration::from_secs(2)) {
                        Ok(r) if r.status == 200 => {}
                        other => {
                            in_rotation.store(false, Ordering::Relaxed);
                            return other.ok().map(|r| r.json());
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                None
            })
        };
        Balancer {
            in_rotation,
            stop,
            poller,
        }
    }

    /// What `/health` said when the host left rotation.
    fn finish(self) -> Option<Value> {
        self.stop.store(true, Ordering::Relaxed);
        self.poller.join().unwrap()
    }
}

#[test]
fn sigterm_drains_first_so_a_balancer_following_health_sees_nothing_refused() {
    let mut tier = Tier::start(2, &bundle("server.js"), &["--drain-seconds", "2"]);
    let balancer = Balancer::follow(tier.port);
    let followers = Load::start_gated(tier.port, small_batch(), 3, balancer.in_rotation.clone());
    std::thread::sleep(Duration::from_millis(500));

    let signalled = Instant::now();
    tier.signal("TERM");
    // /health fails at once, with the reason ...
    let health = loop {
        let r = common::get(tier.port, "/health");
        if r.status == 503 {
            break r.json();
        }
        assert!(
            signalled.elapsed() < Duration::from_millis(500),
            "still 200"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(health["status"], "draining", "{health}");
    assert!(tier.metrics().contains("ssrd_draining 1"));
    // ... while a caller that does not follow it is still served in full.
    let naive = Load::start(tier.port, small_batch(), 2);
    std::thread::sleep(Duration::from_millis(1000));
    let naive = naive.stop();
    assert!(naive.ok > 10, "{naive:?}");
    assert_eq!((naive.failed, naive.refused), (0, 0), "{naive:?}");

    assert_eq!(tier.wait_exit(Duration::from_secs(30)), Some(0));
    let took = signalled.elapsed();
    assert!(took >= Duration::from_secs(2), "drained for 2 s: {took:?}");
    let stats = followers.stop();
    let said = balancer.finish();
    eprintln!("drain: stopped after {took:?}; followers {stats:?}; naive {naive:?}");
    assert_eq!(said.unwrap()["status"], "draining");
    assert!(stats.ok > 10);
    assert_eq!(stats.failed, 0, "{:?}", stats.samples);
    assert_eq!(stats.refused, 0);
}

#[test]
fn ssrd_stop_drains_stops_and_waits() {
    let mut tier = Tier::start(1, &bundle("server.js"), &["--drain-seconds", "1"]);
    let started = Instant::now();
    let out = std::process::Command::new(common::bin())
        .args(["stop", "--run-dir"])
        .arg(&tier.run_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    // `ssrd stop` returned only once the supervisor was gone.
    assert!(tier.try_exit().is_some(), "still running after ssrd stop");
    let again = std::process::Command::new(common::bin())
        .args(["stop", "--run-dir"])
        .arg(&tier.run_dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
}

#[test]
fn every_answer_names_the_bundle_that_rendered_it_and_a_reload_changes_it() {
    let dir = common::tempdir("identity");
    let path = dir.join("app.js");
    let first = std::fs::read(fixture("gem-app.js")).unwrap();
    std::fs::write(&path, &first).unwrap();
    let mut tier = Tier::start(2, &path, &[]);

    let check = |tier: &Tier, source: &[u8]| {
        let sha = sha256_hex(source);
        let short = &sha[..12];
        let health = common::get(tier.port, "/health");
        assert_eq!(health.status, 200);
        assert_eq!(health.json()["bundle"]["sha256"], sha.as_str());
        assert_eq!(health.header("x-ssrd-bundle"), Some(short));
        for _ in 0..4 {
            let r = common::post(
                tier.port,
                "/batch",
                br#"{"0":{"name":"Greeting","data":{"name":"x"}}}"#,
            );
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-ssrd-bundle"), Some(short), "rendered by");
        }
        let m = tier.metrics();
        let line = format!("ssrd_bundle_info{{sha256=\"{sha}\",short=\"{short}\"}} 1");
        assert!(m.contains(&line), "{m}");
        assert_eq!(m.matches("ssrd_bundle_info{").count(), 1, "{m}");
    };
    check(&tier, &first);

    let mut second = first.clone();
    second.extend_from_slice(b"\n// the next deploy\n");
    std::fs::write(&path, &second).unwrap();
    tier.signal("HUP");
    tier.wait_log(LogEvent::ReloadComplete, 0, Duration::from_secs(60));
    check(&tier, &second);
}

#[test]
fn metrics_and_the_tier_listen_where_they_are_told() {
    // 127.0.0.2 and 127.0.0.3 are loopback addresses too: stand-ins for a
    // host's private address.
    let tier = Tier::start(
        1,
        &bundle("server.js"),
        &["--host", "127.0.0.3", "--metrics-host", "127.0.0.2"],
    );
    let at = |ip: &str, port: u16, path: &str| {
        let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().unwrap();
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(|mut s| {
            use std::io::Write;
            s.set_read_timeout(Some(common::TIMEOUT)).unwrap();
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            common::read_response(&mut s)
        })
    };
    let metrics = at("127.0.0.2", tier.metrics_port, "/metrics").expect("metrics on 127.0.0.2");
    assert!(metrics.text().contains("ssrd_workers"));
    assert!(at("127.0.0.1", tier.metrics_port, "/metrics").is_err());
    // The public port's /health reaches the supervisor at its address.
    let health = at("127.0.0.3", tier.port, "/health").expect("tier on 127.0.0.3");
    assert_eq!(health.status, 200, "{}", health.text());
    let batch = {
        let addr: std::net::SocketAddr = format!("127.0.0.3:{}", tier.port).parse().unwrap();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(common::TIMEOUT)).unwrap();
        let body = small_batch();
        use std::io::Write;
        write!(
            s,
            "POST /batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(&body).unwrap();
        common::read_response(&mut s)
    };
    assert_eq!(batch.status, 200);
    assert!(at("127.0.0.1", tier.port, "/ping").is_err());
}
