// Over 450 lines: one concern (the options and their checks); 196 of them are its unit tests.
//! The tier's configuration: every `ssrd up` option, declared once (see
//! options.rs for what follows from each declaration), and the checks on it.
//!
//! Precedence: flag > TOML file (`--config`) > default. The TOML key is the
//! option's name; the flag is the same name with dashes.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use ssrd_worker::WorkerOptions as W;

use crate::error::{Result, UpError};
use crate::options::{options, ShowValue};

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

impl ShowValue for Balance {
    fn show(&self) -> String {
        self.haproxy_name().to_string()
    }
}

/// Where nginx's access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// Nowhere.
    Off,
    /// The supervisor's stderr, where every other log line of the tier goes.
    Stderr,
    /// This file (appended to; reopened by `ssrd reopen-logs`).
    File(PathBuf),
}

impl std::str::FromStr for AccessLog {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "off" | "false" => Ok(AccessLog::Off),
            "stderr" | "true" => Ok(AccessLog::Stderr),
            path if path.starts_with('/') => Ok(AccessLog::File(PathBuf::from(path))),
            other => Err(format!(
                "access_log is \"stderr\", \"off\" or an absolute file path, not {other:?}"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for AccessLog {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(AccessLog::Stderr),
            Raw::Bool(false) => Ok(AccessLog::Off),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl ShowValue for AccessLog {
    fn show(&self) -> String {
        match self {
            AccessLog::Off => "off".into(),
            AccessLog::Stderr => "stderr".into(),
            AccessLog::File(p) => p.display().to_string(),
        }
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

options! {
    /// The JS bundle every worker loads.
    bundle: PathBuf = PathBuf::from("js-bundle/dist/server.js");
    /// Number of render workers (default: one per CPU).
    workers: usize = cpus(), in 1..=512;
    /// Address nginx listens on: the tier's public address. Anything but
    /// loopback exposes rendering to the network (docs/operations.md,
    /// "Listening beyond loopback").
    host: IpAddr = IpAddr::from([127, 0, 0, 1]);
    /// nginx port: where callers send /batch.
    port: u16 = 9000, in 1..=65535;
    /// haproxy frontend port (loopback).
    haproxy_port: u16 = 9001, in 1..=65535;
    /// First worker port; worker i listens on worker_base_port + i - 1.
    worker_base_port: u16 = 9002, in 1..=65535;
    /// haproxy stats page port (loopback).
    stats_port: u16 = 8999, in 1..=65535;
    /// Prometheus /metrics (and /health) port of the supervisor.
    metrics_port: u16 = 9100, in 1..=65535;
    /// Address the supervisor's /metrics and /health listen on (loopback
    /// unless a scraper on another host needs it).
    metrics_host: IpAddr = IpAddr::from([127, 0, 0, 1]);
    /// haproxy balance algorithm.
    #[arg(value_enum)]
    balance: Balance = Balance::First;
    /// Directory for rendered configs, the bundle store, pid and log files;
    /// private to you (default: $XDG_RUNTIME_DIR/ssrd, /run/ssrd as root,
    /// else /tmp/ssrd-UID).
    run_dir: PathBuf = crate::rundir::default_path();
    /// Per-job render deadline, ms.
    render_timeout_ms: u64 = W::RENDER_TIMEOUT_MS.default, in W::RENDER_TIMEOUT_MS.range;
    /// The most one request may render for, all its jobs together, ms; jobs
    /// past it are answered RenderTimeout without running.
    request_budget_ms: u64 = W::REQUEST_BUDGET_MS.default, in W::REQUEST_BUDGET_MS.range;
    /// Each worker's JS heap limit, MiB.
    heap_limit_mb: u64 = W::HEAP_LIMIT_MB.default, in W::HEAP_LIMIT_MB.range;
    /// Each worker's V8 young-generation semi-space, MiB.
    semi_space_mb: u64 = W::SEMI_SPACE_MB.default, in W::SEMI_SPACE_MB.range;
    /// The largest answer (HTML plus meta) one job may return, MiB.
    max_html_mb: u64 = W::MAX_HTML_MB.default, in W::MAX_HTML_MB.range;
    /// shared: one isolate per worker serves every request; request: each
    /// request gets a fresh isolate (docs/worker.md, Isolation).
    isolation: ssrd_worker::Isolation = ssrd_worker::Isolation::Shared;
    /// Largest request body, MiB. nginx reads it whole before anything is
    /// rendered: up to 512 KiB of it in memory, the rest in a file under
    /// body_temp_dir (so slow senders cost memory only that much each).
    max_body_mb: u64 = W::MAX_BODY_BYTES.default >> 20, in 1..=1024;
    /// The most jobs one /batch request may hold; a larger batch is refused
    /// (400 BadRequest) before anything renders.
    max_batch_jobs: u64 = W::MAX_BATCH_JOBS.default, in W::MAX_BATCH_JOBS.range;
    /// Each worker's render cache, bytes: components the bundle declares
    /// pure (README, "The bundle contract", `cache`) are answered from it
    /// on a repeat, without rendering. 0 = off.
    render_cache_bytes: u64 = W::RENDER_CACHE_BYTES.default, in W::RENDER_CACHE_BYTES.range;
    /// Where nginx keeps the part of a request body past 512 KiB while it
    /// arrives (empty: run_dir/nginx/body). Put it on a disk, not a RAM
    /// file system, when run_dir is one (/run under systemd).
    body_temp_dir: PathBuf = PathBuf::new();
    /// Longest wait in haproxy's queue for a free worker, ms.
    queue_timeout_ms: u64 = 10_000, in 1..=3_600_000;
    /// Time a caller has to send its request, ms (nginx client timeouts).
    client_timeout_ms: u64 = 10_000, in W::HEADER_TIMEOUT_MS.range;
    /// Longest a request may take through the tier, ms.
    upstream_timeout_ms: u64 = 60_000, in 1_000..=86_400_000;
    /// Recycle a worker after about this many requests (±20 %); 0 = never.
    recycle_requests: u64 = 0;
    /// Recycle a worker whose JS heap reaches this % of its limit.
    recycle_heap_percent: u64 = 80, in 10..=100;
    /// A worker whose RSS passes this many MiB is replaced: recycled when
    /// idle, retired at once after the request that crossed it; 0 = never.
    recycle_rss_mb: u64 = W::RSS_LIMIT_MB.default, in W::RSS_LIMIT_MB.range;
    /// Kill a worker whose render thread is silent this long, ms (at least
    /// 2 × render timeout + 1 s).
    heartbeat_timeout_ms: u64 = 10_000, in 1..=86_400_000;
    /// On SIGTERM, how long /health answers 503 ("draining") while every
    /// request is still served, before the tier stops accepting, s; lets a
    /// load balancer take the host out first. 0: stop at once. (SIGINT
    /// never drains.)
    drain_seconds: u64 = 5, in 0..=3600;
    /// On SIGTERM, how long in-flight requests may take, ms.
    shutdown_timeout_ms: u64 = 30_000, in 0..=3_600_000;
    /// How long a request that crashed two workers is refused, s.
    quarantine_s: u64 = 300, in 1..=86_400;
    /// Start workers from a V8 snapshot of the bundle.
    snapshot: bool = true;
    /// Extra V8 flags for every worker, space-separated.
    #[arg(allow_hyphen_values = true)]
    v8_flags: String = String::new();
    /// nginx binary (a path, or a name looked up on PATH).
    nginx: PathBuf = PathBuf::from("nginx");
    /// haproxy binary (a path, or a name looked up on PATH).
    haproxy: PathBuf = PathBuf::from("haproxy");
    /// nginx's access log (one JSON line per request): "stderr" (with the
    /// rest of ssrd's logs, so journald or the container runtime rotates
    /// it), "off", or a file path (rotate it with logrotate and `ssrd
    /// reopen-logs`). `true`/`false` mean stderr/off.
    access_log: AccessLog = AccessLog::Stderr;
    /// Where workers export traces (OTLP/HTTP, e.g. "http://127.0.0.1:4318"),
    /// unless OTEL_EXPORTER_OTLP_ENDPOINT is set; empty: traces off unless
    /// it is (docs/operations.md, "Traces").
    otel_endpoint: String = String::new();
    /// The traces' service.name, unless OTEL_SERVICE_NAME is set; empty:
    /// "ssrd".
    otel_service_name: String = String::new();
    /// Development mode (what `ssrd dev` sets): the bundle file is watched
    /// and reloaded when it changes (checked first, so a broken save keeps
    /// the old bundle serving). Never in production.
    dev: bool = false;
}

impl Config {
    /// The OpenTelemetry variables workers get from the config file's
    /// `otel_*` options; a variable already set in the environment wins
    /// (workers inherit it).
    pub fn otel_env(&self) -> Vec<(&'static str, String)> {
        let unset = |name: &str| std::env::var_os(name).is_none_or(|v| v.is_empty());
        let mut env = Vec::new();
        if !self.otel_endpoint.is_empty() && unset("OTEL_EXPORTER_OTLP_ENDPOINT") {
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", self.otel_endpoint.clone()));
        }
        if !self.otel_service_name.is_empty() && unset("OTEL_SERVICE_NAME") {
            env.push(("OTEL_SERVICE_NAME", self.otel_service_name.clone()));
        }
        env
    }
}

impl UpArgs {
    /// Defaults, then the `--config` file, then flags; checked.
    pub fn resolve(&self) -> Result<Config> {
        let mut config = Config::default();
        if let Some(path) = &self.config {
            config.apply_file(ConfigFile::read(path)?);
        }
        config.apply_args(self);
        config.validate()?;
        Ok(config)
    }
}

impl ConfigFile {
    /// Reads a TOML file; unknown keys are an error.
    pub fn read(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UpError::config(format!("reading {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| UpError::config(format!("{}: {e}", path.display())))
    }
}

impl Config {
    /// What a tier running with this config waits for when stopped
    /// (`ssrd stop` reads it from the run dir).
    pub fn stop_plan(&self) -> crate::rundir::StopPlan {
        crate::rundir::StopPlan {
            drain_seconds: self.drain_seconds,
            shutdown_timeout_ms: self.shutdown_timeout_ms,
        }
    }

    /// Checks values that would otherwise fail later and less clearly.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(UpError::config(msg));
        self.check_ranges().map_err(UpError::config)?;
        let last = u32::from(self.worker_base_port) + self.workers as u32 - 1;
        if last > u32::from(u16::MAX) {
            return bad(format!(
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
                return bad(format!(
                    "{} and {} are both {}",
                    pair[0].0, pair[1].0, pair[0].1
                ));
            }
        }
        for (name, port) in &ports {
            if (self.worker_base_port..=last as u16).contains(port) {
                return bad(format!(
                    "{name} {port} falls inside the worker ports {}..={last}",
                    self.worker_base_port
                ));
            }
        }
        if self.request_budget_ms < self.render_timeout_ms {
            return bad(format!(
                "request-budget-ms ({}) must be at least render-timeout-ms ({})",
                self.request_budget_ms, self.render_timeout_ms
            ));
        }
        // haproxy and nginx must never give up on a worker that is still
        // rendering (it would look free while busy): the budget, plus a
        // render's overshoot, stays under their upstream timeout.
        if self.request_budget_ms + 2000 > self.upstream_timeout_ms {
            return bad(format!(
                "request-budget-ms ({}) must be at least 2000 ms under upstream-timeout-ms ({})",
                self.request_budget_ms, self.upstream_timeout_ms
            ));
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

    /// Where nginx reaches the supervisor's /health: the metrics address,
    /// or loopback when that is a wildcard.
    pub fn health_addr(&self) -> std::net::SocketAddr {
        let ip = match self.metrics_host {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        std::net::SocketAddr::new(ip, self.metrics_port)
    }

    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_seconds)
    }

    /// Where nginx writes the part of a body past its memory buffer.
    pub fn body_temp_dir(&self) -> PathBuf {
        if self.body_temp_dir.as_os_str().is_empty() {
            self.run_dir.join("nginx").join("body")
        } else {
            self.body_temp_dir.clone()
        }
    }

    pub fn pid_file(&self) -> PathBuf {
        self.run_dir.join("ssrd.pid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// For every option: a value unlike its default, as a flag value and as
    /// a TOML literal, and how `Config::show` renders it.
    const SAMPLES: &[(&str, &str, &str)] = &[
        ("bundle", "/srv/app/b.js", "\"/srv/app/b.js\""),
        ("workers", "7", "7"),
        ("host", "127.0.0.2", "\"127.0.0.2\""),
        ("port", "9500", "9500"),
        ("haproxy_port", "9501", "9501"),
        ("worker_base_port", "9600", "9600"),
        ("stats_port", "9502", "9502"),
        ("metrics_port", "9503", "9503"),
        ("metrics_host", "0.0.0.0", "\"0.0.0.0\""),
        ("balance", "static-rr", "\"static-rr\""),
        ("run_dir", "/tmp/ssrd-sample", "\"/tmp/ssrd-sample\""),
        ("render_timeout_ms", "1500", "1500"),
        ("request_budget_ms", "4000", "4000"),
        ("heap_limit_mb", "512", "512"),
        ("semi_space_mb", "8", "8"),
        ("max_html_mb", "8", "8"),
        ("isolation", "request", "\"request\""),
        ("max_body_mb", "9", "9"),
        ("max_batch_jobs", "50", "50"),
        ("render_cache_bytes", "1048576", "1048576"),
        (
            "body_temp_dir",
            "/var/tmp/ssrd-body",
            "\"/var/tmp/ssrd-body\"",
        ),
        ("queue_timeout_ms", "3000", "3000"),
        ("client_timeout_ms", "4000", "4000"),
        ("upstream_timeout_ms", "50000", "50000"),
        ("recycle_requests", "1000", "1000"),
        ("recycle_heap_percent", "70", "70"),
        ("recycle_rss_mb", "2048", "2048"),
        ("heartbeat_timeout_ms", "20000", "20000"),
        ("drain_seconds", "12", "12"),
        ("shutdown_timeout_ms", "40000", "40000"),
        ("quarantine_s", "60", "60"),
        ("snapshot", "false", "false"),
        ("v8_flags", "--max-lazy", "\"--max-lazy\""),
        ("nginx", "/opt/nginx", "\"/opt/nginx\""),
        ("haproxy", "/opt/haproxy", "\"/opt/haproxy\""),
        ("access_log", "off", "\"off\""),
        (
            "otel_endpoint",
            "http://127.0.0.1:4318",
            "\"http://127.0.0.1:4318\"",
        ),
        ("otel_service_name", "render", "\"render\""),
        ("dev", "true", "true"),
    ];

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        up: UpArgs,
    }

    #[test]
    fn the_samples_cover_every_option_with_a_non_default_value() {
        let names: Vec<&str> = SAMPLES.iter().map(|s| s.0).collect();
        assert_eq!(
            names,
            Config::OPTION_NAMES,
            "one sample per option, in order"
        );
        let d = Config::default();
        for (name, value, _) in SAMPLES {
            assert_ne!(d.show(name).as_deref(), Some(*value), "{name}");
        }
    }

    #[test]
    fn every_flag_reaches_config() {
        let mut argv = vec!["ssrd".to_string()];
        for (name, value, _) in SAMPLES {
            argv.push(format!("--{}={value}", name.replace('_', "-")));
        }
        let config = {
            let mut c = Config::default();
            c.apply_args(&Cli::parse_from(&argv).up);
            c
        };
        for (name, value, _) in SAMPLES {
            assert_eq!(config.show(name).as_deref(), Some(*value), "--{name}");
        }
    }

    #[test]
    fn every_toml_key_reaches_config_and_flags_win() {
        let text: String = SAMPLES
            .iter()
            .map(|(name, _, toml)| format!("{name} = {toml}\n"))
            .collect();
        let file: ConfigFile = toml::from_str(&text).unwrap();
        let mut config = Config::default();
        config.apply_file(file);
        for (name, value, _) in SAMPLES {
            assert_eq!(config.show(name).as_deref(), Some(*value), "key {name}");
        }
        config.apply_args(&Cli::parse_from(["ssrd", "--workers", "3"]).up);
        assert_eq!(config.workers, 3, "a flag wins over the file");
        assert_eq!(config.port, 9500, "the file wins over the default");
        assert!(toml::from_str::<ConfigFile>("wrokers = 3").is_err());
    }

    #[test]
    fn validation_catches_port_clashes() {
        let c = Config {
            workers: 4,
            worker_base_port: 8998,
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .context
            .contains("stats-port 8999"));
        let c = Config {
            metrics_port: 9000,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().context.contains("both 9000"));
        assert!(Config {
            workers: 2,
            ..Config::default()
        }
        .validate()
        .is_ok());
    }

    /// Every option with a range, at 0, its minimum − 1, its maximum + 1
    /// and a huge value, as a flag and as a TOML key: refused before
    /// anything starts, naming the option (a clap error for a value its
    /// type cannot hold), while its minimum and maximum themselves pass
    /// the range check.
    #[test]
    fn every_option_is_checked_against_its_range_before_anything_starts() {
        assert!(Config::RANGES.len() >= 20, "{:?}", Config::RANGES);
        for &(name, lo, hi) in Config::RANGES {
            let flag = format!("--{}", name.replace('_', "-"));
            let mut bad = vec![hi as u128 + 1, u64::MAX as u128 / 2];
            if lo > 0 {
                bad.extend([0, lo as u128 - 1]);
            }
            for v in bad {
                let argv = vec!["ssrd".to_string(), format!("{flag}={v}")];
                match Cli::try_parse_from(&argv) {
                    Err(_) => {} // the type cannot hold it: clap refuses
                    Ok(cli) => {
                        let err = cli.up.resolve().expect_err(&format!("{flag}={v} accepted"));
                        assert!(err.context.contains(name), "{flag}={v}: {}", err.context);
                        assert!(
                            err.context.contains(&format!("{lo}..={hi}")),
                            "{}",
                            err.context
                        );
                    }
                }
                if let Ok(file) = toml::from_str::<ConfigFile>(&format!("{name} = {v}")) {
                    let mut c = Config::default();
                    c.apply_file(file);
                    assert!(c.check_ranges().is_err(), "{name} = {v} in a file");
                }
            }
            for v in [lo, hi] {
                let argv = vec!["ssrd".to_string(), format!("{flag}={v}")];
                let cli = Cli::try_parse_from(&argv).unwrap();
                let mut c = Config::default();
                c.apply_args(&cli.up);
                assert!(c.check_ranges().is_ok(), "{flag}={v}");
            }
        }
    }

    /// The worker's own ranges are the ones `ssrd up` checks its options
    /// against, so a tier never starts workers that refuse their flags.
    #[test]
    fn the_worker_options_of_up_have_the_workers_ranges() {
        for (name, range) in [
            ("render_timeout_ms", W::RENDER_TIMEOUT_MS.range),
            ("request_budget_ms", W::REQUEST_BUDGET_MS.range),
            ("heap_limit_mb", W::HEAP_LIMIT_MB.range),
            ("semi_space_mb", W::SEMI_SPACE_MB.range),
            ("max_html_mb", W::MAX_HTML_MB.range),
            ("recycle_rss_mb", W::RSS_LIMIT_MB.range),
            ("client_timeout_ms", W::HEADER_TIMEOUT_MS.range),
        ] {
            let up = Config::RANGES.iter().find(|r| r.0 == name).unwrap();
            assert_eq!((up.1, up.2), (*range.start(), *range.end()), "{name}");
        }
        // max_body_mb, in bytes, within the worker's --max-body-bytes.
        let body = Config::RANGES
            .iter()
            .find(|r| r.0 == "max_body_mb")
            .unwrap();
        assert!(W::MAX_BODY_BYTES.range.contains(&(body.2 << 20)));
    }
}
