//! Helpers for end-to-end tests: start real `ssrd` processes on loopback
//! (port 0), talk real HTTP to them, and clean up.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Every wait in the tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ssrd"))
}

/// A built bundle from js-bundle/dist (e.g. "faults.js").
pub fn bundle(name: &str) -> PathBuf {
    let p = root().join("js-bundle/dist").join(name);
    assert!(
        p.exists(),
        "{} is missing: build the JS bundle first (cd js-bundle && npm ci && npm run build)",
        p.display()
    );
    p
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// A fresh directory for one test's files.
pub fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ssrd-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn bench_fixture(name: &str) -> Vec<u8> {
    std::fs::read(root().join("bench/fixtures").join(name)).expect("bench fixture")
}

/// A running `ssrd worker`, killed on drop.
pub struct Worker {
    pub child: Child,
    pub port: u16,
    /// The worker's ready line.
    pub ready: Value,
    /// Lines the worker wrote to stderr (collected in the background).
    stderr: mpsc::Receiver<String>,
    /// Lines after the ready line on stdout (events, with `--events`).
    stdout: mpsc::Receiver<String>,
}

impl Worker {
    /// Starts a worker on a free port with the given bundle and extra flags,
    /// and waits for its ready line.
    pub fn start(bundle: &std::path::Path, extra: &[&str]) -> Worker {
        let mut child = Command::new(bin())
            .arg("worker")
            .arg("--bundle")
            .arg(bundle)
            .args(["--port", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssrd worker");
        let stderr = collect_lines(child.stderr.take().unwrap());
        let stdout = collect_lines(child.stdout.take().unwrap());
        let line = match stdout.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let errs: Vec<String> = stderr.try_iter().collect();
                panic!(
                    "worker never printed its ready line; stderr:\n{}",
                    errs.join("\n")
                );
            }
        };
        let ready: Value = serde_json::from_str(&line).expect("ready line is JSON");
        assert_eq!(ready["ready"], true, "{line}");
        let port = ready["port"].as_u64().expect("port in ready line") as u16;
        Worker {
            child,
            port,
            ready,
            stderr,
            stdout,
        }
    }

    pub fn faults(extra: &[&str]) -> Worker {
        Self::start(&bundle("faults.js"), extra)
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Resp {
        post(self.port, path, body)
    }

    pub fn batch(&self, body: &Value) -> Value {
        let r = self.post("/batch", body.to_string().as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    pub fn get(&self, path: &str) -> Resp {
        request(
            self.port,
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("worker did not exit within {TIMEOUT:?}");
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// The next stdout line (an event), waiting at most `within`.
    pub fn next_event(&self, within: Duration) -> Option<Value> {
        let line = self.stdout.recv_timeout(within).ok()?;
        Some(
            serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("event is not JSON ({e}): {line}")),
        )
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect_lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// An HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A failed request's kind (`X-Ssrd-Error`), checked against its text
    /// body, which must be `Kind: what was wrong` and never JSON (so that
    /// Hypernova's Ruby client falls back instead of blanking components).
    pub fn error_kind(&self) -> String {
        let kind = self
            .header("x-ssrd-error")
            .unwrap_or_else(|| panic!("no X-Ssrd-Error on {}: {}", self.status, self.text()))
            .to_string();
        let text = self.text();
        assert!(
            text.starts_with(&format!("{kind}: ")),
            "body of a failed request: {text}"
        );
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
        kind
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

pub fn post(port: u16, path: &str, body: &[u8]) -> Resp {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    request(port, &req)
}

/// Sends raw bytes and reads the response until the server closes.
pub fn request(port: u16, raw: &[u8]) -> Resp {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    // The server may answer (413) and close before reading all of a big body.
    let _ = stream.write_all(raw);
    read_response(&mut stream)
}

/// POSTs on an open keep-alive connection and reads exactly one response
/// (by its Content-Length), leaving the connection open.
pub fn post_on(stream: &mut TcpStream, path: &str, body: &[u8]) -> Resp {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(&req).expect("send on the open connection");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(resp) = parse_response(&buf) {
            let want = resp
                .header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .expect("a Content-Length");
            if resp.body.len() >= want {
                return resp;
            }
        }
        let n = stream.read(&mut chunk).expect("read the response");
        assert!(
            n > 0,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn read_response(stream: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    parse_response(&buf)
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&buf)))
}

pub fn parse_response(buf: &[u8]) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Some(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..pos]).unwrap_or("0").trim(), 16)
                .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = &rest[(start + size + 2).min(rest.len())..];
    }
    out
}

/// Like `post`, but a refused or broken connection is an `Err`, not a panic.
pub fn try_post(port: u16, path: &str, body: &[u8], timeout: Duration) -> Result<Resp, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    stream.write_all(&req).map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    stream
        .read_to_end(&mut buf)
        .map_err(|e| format!("read: {e}"))?;
    parse_response(&buf).ok_or_else(|| format!("no HTTP response ({} bytes)", buf.len()))
}

/// GET `path`, with every failure returned rather than panicking.
pub fn try_get(port: u16, path: &str, timeout: Duration) -> Result<Resp, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    stream
        .read_to_end(&mut buf)
        .map_err(|e| format!("read: {e}"))?;
    parse_response(&buf).ok_or_else(|| format!("no HTTP response ({} bytes)", buf.len()))
}

pub fn get(port: u16, path: &str) -> Resp {
    request(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// A running `ssrd up` on free loopback ports, stopped on drop.
pub struct Tier {
    pub child: Child,
    /// nginx: the tier's public port.
    pub port: u16,
    pub haproxy_port: u16,
    pub stats_port: u16,
    pub metrics_port: u16,
    pub worker_ports: Vec<u16>,
    pub run_dir: PathBuf,
    /// The supervisor's ready line.
    pub ready: Value,
    /// The supervisor's (and its children's) stderr lines, as they come.
    stderr: mpsc::Receiver<String>,
    /// Lines read so far from `stderr`.
    pub log: Vec<String>,
}

impl Tier {
    /// Starts a tier with `workers` workers on a free block of ports.
    pub fn start(workers: usize, bundle: &std::path::Path, extra: &[&str]) -> Tier {
        for attempt in 0..8 {
            let base = free_block(workers + 4);
            let run_dir =
                std::env::temp_dir().join(format!("ssrd-tier-{}-{base}", std::process::id()));
            let _ = std::fs::remove_dir_all(&run_dir);
            match Tier::start_at(workers, bundle, extra, base, &run_dir) {
                Ok(tier) => return tier,
                Err(text) if text.contains("is not available") && attempt < 7 => continue,
                Err(text) => panic!("ssrd up never became ready; stderr:\n{text}"),
            }
        }
        unreachable!()
    }

    /// Starts a tier on the ports from `base` with this run dir; `Err` with
    /// its stderr if it never became ready.
    pub fn start_at(
        workers: usize,
        bundle: &std::path::Path,
        extra: &[&str],
        base: u16,
        run_dir: &std::path::Path,
    ) -> Result<Tier, String> {
        let mut child = Command::new(bin())
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
            .arg(run_dir)
            // No drain before stopping unless a test asks for one: every
            // test stops its tier with SIGTERM.
            .args(if extra.contains(&"--drain-seconds") {
                &[][..]
            } else {
                &["--drain-seconds", "0"][..]
            })
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssrd up");
        let stderr = collect_lines(child.stderr.take().unwrap());
        let stdout = collect_lines(child.stdout.take().unwrap());
        match stdout.recv_timeout(TIMEOUT) {
            Ok(line) => {
                let ready: Value = serde_json::from_str(&line).expect("ready line is JSON");
                std::thread::spawn(move || for _ in stdout {});
                let mut tier = Tier {
                    child,
                    port: base,
                    haproxy_port: base + 1,
                    stats_port: base + 2,
                    metrics_port: base + 3,
                    worker_ports: (0..workers as u16).map(|i| base + 4 + i).collect(),
                    run_dir: run_dir.to_path_buf(),
                    ready,
                    stderr,
                    log: Vec::new(),
                };
                // The supervisor logs each worker's entry into rotation
                // before its ready line, but stderr and stdout are read by
                // different threads: wait for the log to catch up so
                // worker_pids() sees every worker.
                tier.wait_log("worker in rotation", workers - 1, TIMEOUT);
                Ok(tier)
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let errs: Vec<String> = stderr.try_iter().collect();
                Err(errs.join("\n"))
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The running haproxy's pid (its command line names the run dir).
    pub fn haproxy_pid(&self) -> i64 {
        let config = format!("{}/haproxy.cfg", self.run_dir.display());
        processes_with(&config)
            .iter()
            .find(|(_, c)| c.contains("haproxy"))
            .map(|(p, _)| *p as i64)
            .expect("a running haproxy")
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} {}", self.pid());
    }

    /// Reads new stderr lines into `log` and returns all of them.
    pub fn logs(&mut self) -> &[String] {
        self.log.extend(self.stderr.try_iter());
        &self.log
    }

    /// Log lines (JSON) whose "msg" is `msg`.
    pub fn log_events(&mut self, msg: &str) -> Vec<Value> {
        let needle = format!("\"msg\":\"{msg}\"");
        self.logs()
            .iter()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until a log line with this "msg" appears (beyond `skip` earlier ones).
    pub fn wait_log(&mut self, msg: &str, skip: usize, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let found = self.log_events(msg);
            if found.len() > skip {
                return found[skip].clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "no {msg:?} log line within {within:?}; log:\n{}",
                    self.log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pids of the workers currently ready, by worker name.
    pub fn worker_pids(&mut self) -> std::collections::BTreeMap<String, i64> {
        let mut pids = std::collections::BTreeMap::new();
        for e in self.log_events("worker in rotation") {
            if let (Some(w), Some(pid)) = (e["worker"].as_str(), e["worker_pid"].as_i64()) {
                pids.insert(w.to_string(), pid);
            }
        }
        pids
    }

    /// haproxy's view of the workers, from its stats page as CSV.
    pub fn haproxy_servers(&self) -> Vec<std::collections::HashMap<String, String>> {
        let csv = get(self.stats_port, "/;csv").text();
        let mut lines = csv.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or("")
            .trim_start_matches("# ")
            .split(',')
            .map(str::to_string)
            .collect();
        lines
            .map(|l| {
                header
                    .iter()
                    .cloned()
                    .zip(l.split(',').map(str::to_string))
                    .collect::<std::collections::HashMap<_, _>>()
            })
            .filter(|row| {
                row.get("pxname").map(String::as_str) == Some("workers")
                    && row.get("svname").is_some_and(|s| s.starts_with('w'))
            })
            .collect()
    }

    pub fn server_status(&self, name: &str) -> String {
        self.haproxy_servers()
            .into_iter()
            .find(|r| r["svname"] == name)
            .map(|r| r["status"].clone())
            .unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        get(self.metrics_port, "/metrics").text()
    }

    /// The supervisor's exit code if it has exited (Some(None): by signal).
    pub fn try_exit(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().expect("try_wait").map(|s| s.code())
    }

    /// Waits for the supervisor to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("ssrd up did not exit within {within:?}");
    }
}

impl Drop for Tier {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if self.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// A block of `n` consecutive free loopback ports, below Linux's default
/// ephemeral range (32768–60999) so that no outgoing connection of a test
/// running beside this one takes a port of the block before the tier binds
/// it.
pub fn free_block(n: usize) -> u16 {
    let mut seed = (std::process::id() as u64) << 20
        ^ Instant::now().elapsed().as_nanos() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    loop {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let base = 20_000 + (seed % (12_700 - n as u64)) as u16;
        let free =
            (0..n as u16).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
    }
}

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

/// Live (not zombie) processes whose command line contains `needle`, as
/// (pid, command line).
pub fn processes_with(needle: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if !zombie && cmdline.contains(needle) && pid != std::process::id() as i32 {
            out.push((pid, cmdline.trim().to_string()));
        }
    }
    out
}

/// Live processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str()) {
            out.push(pid);
        }
    }
    out
}

/// Sends a signal with kill(1).
/// Sends signal `sig` ("9", "KILL", "SIGKILL", "ABRT", ...) to `pid` with
/// kill(2) directly, so a loop over several processes hits them within
/// microseconds of each other ("at once"), not a fork and exec apart.
pub fn kill(pid: i64, sig: &str) {
    use nix::sys::signal::{self, Signal};
    let signal = match sig.parse::<i32>() {
        Ok(n) => Signal::try_from(n),
        Err(_) if sig.starts_with("SIG") => sig.parse::<Signal>(),
        Err(_) => format!("SIG{sig}").parse::<Signal>(),
    }
    .unwrap_or_else(|_| panic!("no signal {sig}"));
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    signal::kill(pid, signal).unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
}

/// Waits until `done` holds, or panics with `what` after `within`.
pub fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit within `within` (killing it otherwise) and
/// returns its output, read while it runs (a child blocked on a full pipe
/// never exits).
pub fn wait_output(child: Child, within: Duration) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(within) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            kill(pid as i64, "KILL");
            panic!("process {pid} ran past {within:?}");
        }
    }
}
