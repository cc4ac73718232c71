//! A whole tier (`ssrd up`: nginx, haproxy, workers) on a free block of
//! loopback ports, stopped on drop; its log read as typed events.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::worker::collect_lines;
use super::{bin, free_block, get, processes_with, LogEvent, TIMEOUT};

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
        Tier::start_command("up", workers, bundle, extra)
    }

    /// Like [`Tier::start`], with another command that runs a tier (`dev`).
    pub fn start_command(
        command: &str,
        workers: usize,
        bundle: &std::path::Path,
        extra: &[&str],
    ) -> Tier {
        Tier::start_env(command, workers, bundle, extra, &[])
    }

    /// Like [`Tier::start_command`], with these environment variables set
    /// for the tier (and so for its workers).
    pub fn start_env(
        command: &str,
        workers: usize,
        bundle: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Tier {
        for attempt in 0..8 {
            let base = free_block(workers + 4);
            let run_dir =
                std::env::temp_dir().join(format!("ssrd-tier-{}-{base}", std::process::id()));
            let _ = std::fs::remove_dir_all(&run_dir);
            match Tier::launch(command, workers, bundle, extra, env, base, &run_dir) {
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
        Tier::launch("up", workers, bundle, extra, &[], base, run_dir)
    }

    fn launch(
        command: &str,
        workers: usize,
        bundle: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
        base: u16,
        run_dir: &std::path::Path,
    ) -> Result<Tier, String> {
        let mut child = Command::new(bin())
            .envs(env.iter().copied())
            .arg(command)
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
                tier.wait_log(LogEvent::WorkerInRotation, workers - 1, TIMEOUT);
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

    /// Log lines (JSON) of this event (their `event` field; the words of
    /// `msg` are for people and are not what tests read).
    pub fn log_events(&mut self, event: LogEvent) -> Vec<Value> {
        let want = serde_json::to_value(event).expect("an event name");
        self.logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == want)
            .collect()
    }

    /// Waits until a line of this event appears (beyond `skip` earlier ones).
    pub fn wait_log(&mut self, event: LogEvent, skip: usize, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let found = self.log_events(event);
            if found.len() > skip {
                return found[skip].clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "no {event:?} log line within {within:?}; log:\n{}",
                    self.log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pids of the workers currently ready, by worker name.
    pub fn worker_pids(&mut self) -> std::collections::BTreeMap<String, i64> {
        let mut pids = std::collections::BTreeMap::new();
        for e in self.log_events(LogEvent::WorkerInRotation) {
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
