//! Steady load from a few threads while a test breaks something, with
//! every outcome a client can see counted (ok, failed, refused, reset).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{try_post, TIMEOUT};

/// Requests sent in a steady loop from a few threads, with the outcomes.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Set once the tier is shutting down: a connection reset before any
    /// response is then one nginx never accepted (it closed its listener
    /// with the connection still in the kernel's queue), i.e. refused.
    shutting_down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<LoadStats>>,
}

/// What a load run saw.
#[derive(Default, Clone)]
pub struct LoadStats {
    /// Answered 200 with every job rendered.
    pub ok: u64,
    /// Accepted but failed: a non-200, a broken response, or a failed job.
    pub failed: u64,
    /// Never accepted (connection refused): e.g. after shutdown began.
    pub refused: u64,
    /// The first few failures, for the assertion message.
    pub samples: Vec<String>,
    /// (seconds since the load started, latency in ms) of every answer.
    pub latencies: Vec<(f64, f64)>,
}

impl Load {
    pub fn start(port: u16, body: Vec<u8>, threads: usize) -> Load {
        let always = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        Self::start_gated(port, body, threads, always)
    }

    /// Like `start`, but requests are only sent while `gate` is true (a
    /// caller behind a load balancer that follows `/health`).
    pub fn start_gated(
        port: u16,
        body: Vec<u8>,
        threads: usize,
        gate: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Load {
        let began = Instant::now();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let shutting_down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let body = std::sync::Arc::new(body);
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                let shutting_down = shutting_down.clone();
                let body = body.clone();
                let gate = gate.clone();
                std::thread::spawn(move || {
                    let mut s = LoadStats::default();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if !gate.load(std::sync::atomic::Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        let closing = shutting_down.load(std::sync::atomic::Ordering::Relaxed);
                        let sent = Instant::now();
                        let answer = try_post(port, "/batch", &body, TIMEOUT);
                        s.latencies.push((
                            sent.duration_since(began).as_secs_f64(),
                            sent.elapsed().as_secs_f64() * 1000.0,
                        ));
                        match answer {
                            Err(e)
                                if e.starts_with("connect")
                                    || (closing
                                        && (e.contains("reset") || e.contains("Broken pipe"))) =>
                            {
                                s.refused += 1;
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            Err(e) => s.fail(e),
                            Ok(r) if r.status != 200 => {
                                s.fail(format!("status {}: {}", r.status, r.text()))
                            }
                            Ok(r) => match serde_json::from_slice::<Value>(&r.body) {
                                Ok(v)
                                    if v["results"].as_object().is_some_and(|m| {
                                        m.values().all(|j| j["success"] == true)
                                    }) =>
                                {
                                    s.ok += 1
                                }
                                Ok(v) => {
                                    let bad = v["results"]
                                        .as_object()
                                        .and_then(|m| {
                                            m.values().find(|j| j["success"] != true).cloned()
                                        })
                                        .map(|j| format!("{} {}", j["name"], j["error"]))
                                        .unwrap_or_default();
                                    s.fail(format!("failed job: {bad}"))
                                }
                                Err(_) => s.fail(format!(
                                    "not JSON: {}",
                                    r.text().chars().take(300).collect::<String>()
                                )),
                            },
                        }
                    }
                    s
                })
            })
            .collect();
        Load {
            stop,
            shutting_down,
            threads,
        }
    }

    /// Marks the start of a shutdown (see `shutting_down`).
    pub fn shutting_down(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn stop(self) -> LoadStats {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = LoadStats::default();
        for t in self.threads {
            let s = t.join().expect("load thread");
            total.ok += s.ok;
            total.failed += s.failed;
            total.refused += s.refused;
            total.samples.extend(s.samples);
            total.latencies.extend(s.latencies);
        }
        total
    }
}

impl std::fmt::Debug for LoadStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok {} failed {} refused {} samples {:?}",
            self.ok, self.failed, self.refused, self.samples
        )
    }
}

impl LoadStats {
    /// The p99 latency (ms) of requests sent between `from` and `to`
    /// seconds after the load started.
    pub fn p99_between(&self, from: f64, to: f64) -> f64 {
        let mut window: Vec<f64> = self
            .latencies
            .iter()
            .filter(|(t, _)| (from..to).contains(t))
            .map(|(_, ms)| *ms)
            .collect();
        if window.is_empty() {
            return 0.0;
        }
        window.sort_by(f64::total_cmp);
        window[((window.len() - 1) as f64 * 0.99).round() as usize]
    }

    fn fail(&mut self, why: String) {
        self.failed += 1;
        if self.samples.len() < 5 {
            self.samples.push(why);
        }
    }
}
