//! One `ssrd worker` process on a port of its own (no nginx, no haproxy),
//! with its ready line read as the typed event, killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{bin, bundle, post, request, Ready, Resp, WorkerEvent, TIMEOUT};

/// A running `ssrd worker`, killed on drop.
pub struct Worker {
    pub child: Child,
    pub port: u16,
    /// The worker's ready line.
    pub ready: Ready,
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
        let ready = match serde_json::from_str::<WorkerEvent>(&line) {
            Ok(WorkerEvent::Ready(ready)) if ready.ready => ready,
            other => panic!("not a ready line: {line} ({other:?})"),
        };
        let port = ready.port;
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

pub(super) fn collect_lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
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
