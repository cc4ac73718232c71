//! The tier's configuration: defaults, an optional TOML file, then flags.
//!
//! Every option has one name, used both as the TOML key and (with dashes) as
//! the `ssrd up` flag. Precedence: flag > file > default.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Which haproxy balancing algorithm spreads requests over workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Fill the lowest-numbered free worker first (Airbnb measured ~15 %
    /// lower latency: hot caches, idle workers stay idle).
    First,
    /// Rotate over workers in a fixed order.
    StaticRr,
}

impl Balance {
    pub fn haproxy_name(self) -> &'static str {
        match self {
            Balance::First => "first",
            Balance::StaticRr => "static-rr",
        }
    }
}

/// Everything `ssrd up` runs with. See `ssrd up --help` for each field.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The JS bundle every worker loads.
    pub bundle: PathBuf,
    /// Number of render workers.
    pub workers: usize,
    /// Address nginx listens on (the tier's public address).
    pub host: IpAddr,
    /// nginx: the port callers use.
    pub port: u16,
    /// haproxy's frontend (nginx proxies to it; loopback only).
    pub haproxy_port: u16,
    /// First worker port; worker i listens on worker_base_port + i - 1.
    pub worker_base_port: u16,
    /// haproxy stats page.
    pub stats_port: u16,
    /// Prometheus metrics of the supervisor.
    pub metrics_port: u16,
    /// haproxy balancing algorithm.
    pub balance: Balance,
    /// Where rendered configs, sockets, pid files and logs go.
    pub run_dir: PathBuf,
    /// Per-job render deadline.
    pub render_timeout_ms: u64,
    /// Each worker's JS heap limit.
    pub heap_limit_mb: u64,
    /// Each worker's V8 young-generation semi-space (MiB).
    pub semi_space_mb: u64,
    /// Largest request body nginx accepts (MiB).
    pub max_body_mb: u64,
    /// How long a request may wait in haproxy's queue for a free worker.
    pub queue_timeout_ms: u64,
    /// Timeout for a caller to send a request (nginx client timeouts).
    pub client_timeout_ms: u64,
    /// Upper bound on one request through the tier (nginx/haproxy server side).
    pub upstream_timeout_ms: u64,
    /// Recycle a worker after about this many requests (±20 % jitter); 0 = never.
    pub recycle_requests: u64,
    /// Recycle a worker whose JS heap stays above this share of its limit (%).
    pub recycle_heap_percent: u64,
    /// Recycle a worker whose RSS exceeds this (MiB); 0 = never.
    pub recycle_rss_mb: u64,
    /// Kill a worker whose render thread has been silent this long.
    pub heartbeat_timeout_ms: u64,
    /// Graceful shutdown: how long in-flight requests may take to finish.
    pub shutdown_timeout_ms: u64,
    /// Start workers from a V8 snapshot of the bundle (built at start and on reload).
    pub snapshot: bool,
    /// Extra V8 flags for every worker.
    pub v8_flags: String,
    /// nginx binary.
    pub nginx: PathBuf,
    /// haproxy binary.
    pub haproxy: PathBuf,
    /// Write nginx's access log (JSON lines, with request ids) to the run dir.
    pub access_log: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bundle: PathBuf::from("js-bundle/dist/server.js"),
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            host: IpAddr::from([127, 0, 0, 1]),
            port: 9000,
            haproxy_port: 9001,
            worker_base_port: 9002,
            stats_port: 8999,
            metrics_port: 9100,
            balance: Balance::First,
            run_dir: std::env::temp_dir().join("ssrd"),
            render_timeout_ms: 1000,
            heap_limit_mb: 256,
            semi_space_mb: 16,
            max_body_mb: 5,
            queue_timeout_ms: 10_000,
            client_timeout_ms: 10_000,
            upstream_timeout_ms: 60_000,
            recycle_requests: 0,
            recycle_heap_percent: 80,
            recycle_rss_mb: 1024,
            heartbeat_timeout_ms: 10_000,
            shutdown_timeout_ms: 30_000,
            snapshot: true,
            v8_flags: String::new(),
            nginx: PathBuf::from("nginx"),
            haproxy: PathBuf::from("haproxy"),
            access_log: true,
        }
    }
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Checks values that would otherwise fail later and less clearly.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 || self.workers > 512 {
            return Err(format!("workers must be 1..=512, not {}", self.workers));
        }
        let last = u32::from(self.worker_base_port) + self.workers as u32 - 1;
        if last > u32::from(u16::MAX) {
            return Err(format!(
                "worker ports {}..{last} run past 65535",
                self.worker_base_port
            ));
        }
        let mut ports = vec![
            ("port", self.port),
            ("haproxy-port", self.haproxy_port),
            ("stats-port", self.stats_port),
            ("metrics-port", self.metrics_port),
        ];
        ports.sort_by_key(|p| p.1);
        for pair in ports.windows(2) {
            if pair[0].1 == pair[1].1 {
                return Err(format!(
                    "{} and {} are both {}",
                    pair[0].0, pair[1].0, pair[0].1
                ));
            }
        }
        for (name, port) in &ports {
            if (self.worker_base_port..=last as u16).contains(port) {
                return Err(format!(
                    "{name} {port} falls inside the worker ports {}..={last}",
                    self.worker_base_port
                ));
            }
        }
        if self.render_timeout_ms == 0 || self.heap_limit_mb < 16 || self.max_body_mb == 0 {
            return Err(
                "render-timeout-ms must be > 0, heap-limit-mb >= 16, max-body-mb > 0".into(),
            );
        }
        if !(1..=256).contains(&self.semi_space_mb) {
            return Err("semi-space-mb must be 1..=256".into());
        }
        if !(10..=100).contains(&self.recycle_heap_percent) {
            return Err("recycle-heap-percent must be 10..=100".into());
        }
        Ok(())
    }

    pub fn worker_port(&self, slot: usize) -> u16 {
        self.worker_base_port + slot as u16
    }

    pub fn heartbeat_timeout(&self) -> Duration {
        // A batch may legitimately keep the render thread busy for a few
        // deadlines, but it sends heartbeats between jobs.
        Duration::from_millis(
            self.heartbeat_timeout_ms
                .max(2 * self.render_timeout_ms + 1000),
        )
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    pub fn pid_file(&self) -> PathBuf {
        self.run_dir.join("ssrd.pid")
    }

    pub fn snapshot_file(&self) -> PathBuf {
        self.run_dir.join("bundle.snap")
    }

    pub fn haproxy_socket(&self) -> PathBuf {
        self.run_dir.join("haproxy.sock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c: Config = toml::from_str(
            "workers = 3\nbalance = \"static-rr\"\nport = 9100\nmetrics_port = 9200",
        )
        .unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(c.balance, Balance::StaticRr);
        assert_eq!(c.port, 9100);
        assert_eq!(c.haproxy_port, 9001, "untouched keys keep defaults");
        assert!(toml::from_str::<Config>("wrokers = 3").is_err());
    }

    #[test]
    fn validation_catches_port_clashes() {
        let c = Config {
            workers: 4,
            worker_base_port: 8998,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().contains("stats-port 8999"));
        let c = Config {
            metrics_port: 9000,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().contains("both 9000"));
        assert!(Config {
            workers: 2,
            ..Config::default()
        }
        .validate()
        .is_ok());
    }
}
