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
