// Over 450 lines: one concern (the worker's options, declared once); 81 of them are its unit tests.
//! The worker's options, declared once: every flag of `ssrd worker` (and
//! the engine's, which `ssrd render` shares), its default and the values it
//! may take.
//!
//! The same type is read three ways: clap parses it (`ssrd worker`, `ssrd
//! render`), `ssrd up` builds one per worker and turns it into that
//! worker's arguments with [`WorkerOptions::to_args`] (which parse back to
//! the same value), and [`WorkerOptions::into_config`] turns it into what a
//! worker runs with. `ssrd up` checks its own options against the ranges
//! here ([`WorkerOptions::RENDER_TIMEOUT_MS`] and the rest) before anything
//! starts, so no option can start a tier whose workers refuse it.

use std::ffi::OsString;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches};

use crate::boot::BootConfig;
use crate::config::{HttpConfig, Isolation, WorkerConfig};
use crate::memory_guard;
use crate::render::RequestLimits;

/// One numeric option's default and the values it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit<T> {
    /// What the option is when not given.
    pub default: T,
    /// The values accepted; anything else is refused before a worker starts.
    pub range: RangeInclusive<T>,
}

impl Limit<u32> {
    /// The range as clap's parser for 32-bit integers takes it.
    pub fn clap_range(&self) -> RangeInclusive<i64> {
        i64::from(*self.range.start())..=i64::from(*self.range.end())
    }
}

/// Options of everything that runs a bundle: `ssrd worker` and `ssrd render`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct RenderOptions {
    /// The JS bundle (see README, "The bundle contract").
    #[arg(long, env = "SSRD_BUNDLE")]
    pub bundle: PathBuf,
    /// A job running longer than this is stopped and answered as RenderTimeout.
    #[arg(long, default_value_t = WorkerOptions::RENDER_TIMEOUT_MS.default,
          value_parser = clap::value_parser!(u64).range(WorkerOptions::RENDER_TIMEOUT_MS.range))]
    pub render_timeout_ms: u64,
    /// The isolate's JS heap limit. A job that exhausts it is answered as
    /// HeapLimitExceeded and the worker exits with code 75 to be replaced.
    #[arg(long, default_value_t = WorkerOptions::HEAP_LIMIT_MB.default,
          value_parser = clap::value_parser!(u64).range(WorkerOptions::HEAP_LIMIT_MB.range))]
    pub heap_limit_mb: u64,
    /// V8's young-generation semi-space, MiB. SSR makes lots of short-lived
    /// garbage; a larger semi-space means fewer scavenges.
    #[arg(long, default_value_t = WorkerOptions::SEMI_SPACE_MB.default,
          value_parser = clap::value_parser!(u64).range(WorkerOptions::SEMI_SPACE_MB.range))]
    pub semi_space_mb: u64,
    /// Extra V8 flags, space-separated (e.g. "--max-lazy").
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub v8_flags: String,
    /// Times each of the bundle's warm-up jobs is rendered before serving
    /// (`ssrd render`: before the measured renders, with --repeat only).
    #[arg(long, default_value_t = WorkerOptions::WARMUP_ROUNDS.default,
          value_parser = clap::value_parser!(u32).range(WorkerOptions::WARMUP_ROUNDS.clap_range()))]
    pub warmup_rounds: u32,
    /// The largest answer (HTML plus meta) one job may return, MiB; a
    /// larger one fails the job with AnswerTooLarge.
    #[arg(long, default_value_t = WorkerOptions::MAX_HTML_MB.default,
          value_parser = clap::value_parser!(u64).range(WorkerOptions::MAX_HTML_MB.range))]
    pub max_html_mb: u64,
    /// shared: one isolate serves every request (module state and globals
    /// persist; built-ins are frozen). request: each request (`ssrd render
    /// --repeat`: each iteration) gets a fresh isolate from the snapshot.
    #[arg(long, default_value_t = Isolation::Shared)]
    pub isolation: Isolation,
    /// The most one request (`ssrd render`: one iteration) may render for, all its jobs together, ms;
    /// jobs past it are answered RenderTimeout without running.
    #[arg(long, default_value_t = WorkerOptions::REQUEST_BUDGET_MS.default,
          value_parser = clap::value_parser!(u64).range(WorkerOptions::REQUEST_BUDGET_MS.range))]
    pub request_budget_ms: u64,
    /// Retire (a worker exits 76; `ssrd render` stops) after a request that left the process's resident
    /// memory above this many MiB; a render that takes it a quarter past
    /// this is stopped at once (MemoryLimitExceeded). 0 = never.
    #[arg(long, default_value_t = WorkerOptions::RSS_LIMIT_MB.default,
          value_parser = clap::value_parser!(u64).range(WorkerOptions::RSS_LIMIT_MB.range))]
    pub rss_limit_mb: u64,
}

/// Everything `ssrd worker` takes.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// The options shared with `ssrd render`.
    #[command(flatten)]
    pub engine: RenderOptions,
    /// Port to listen on; 0 picks a free port (reported in the ready line).
    #[arg(long, required_unless_present = "listen_fd")]
    pub port: Option<u16>,
    /// Serve on this inherited listening socket instead of binding a port
    /// (the supervisor passes one so a restarting worker refuses nothing).
    #[arg(long, conflicts_with = "port")]
    pub listen_fd: Option<i32>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Largest accepted request body, bytes.
    #[arg(long, default_value_t = WorkerOptions::MAX_BODY_BYTES.default,
          value_parser = clap::value_parser!(u64).range(WorkerOptions::MAX_BODY_BYTES.range))]
    pub max_body_bytes: u64,
    /// The most jobs one /batch request may hold; a larger batch is refused
    /// (400) before anything renders.
    #[arg(long, default_value_t = WorkerOptions::MAX_BATCH_JOBS.default,
          value_parser = clap::value_parser!(u64).range(WorkerOptions::MAX_BATCH_JOBS.range))]
    pub max_batch_jobs: u64,
    /// Start from this V8 snapshot of the bundle; built and written here
    /// first if missing or made from another bundle.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// Time allowed for a client to send request headers, ms.
    #[arg(long, default_value_t = WorkerOptions::HEADER_TIMEOUT_MS.default,
          value_parser = clap::value_parser!(u64).range(WorkerOptions::HEADER_TIMEOUT_MS.range))]
    pub header_timeout_ms: u64,
    /// Time allowed for a client to send the request body, ms.
    #[arg(long, default_value_t = WorkerOptions::BODY_TIMEOUT_MS.default,
          value_parser = clap::value_parser!(u64).range(WorkerOptions::BODY_TIMEOUT_MS.range))]
    pub body_timeout_ms: u64,
    /// SHA-256 (hex) of the bundle, for the `X-Ssrd-Bundle` header (default:
    /// computed from the bundle file).
    #[arg(long)]
    pub bundle_id: Option<String>,
    /// After the ready line, write per-request events and a heartbeat every
    /// second as JSON lines on stdout (the supervisor reads them).
    #[arg(long)]
    pub events: bool,
    /// Write the ready line and events to this inherited descriptor instead
    /// of stdout (the supervisor's pipe: bundle code cannot reach it).
    #[arg(long)]
    pub events_fd: Option<i32>,
    /// Name the request in flight in this inherited file (the supervisor
    /// reads it if the process dies mid-render).
    #[arg(long)]
    pub slate_fd: Option<i32>,
    /// Read control lines (quarantined requests) from stdin.
    #[arg(long)]
    pub control: bool,
    /// The render cache's byte budget: the components the bundle declares
    /// pure (README, "The bundle contract", `cache`) are answered from it
    /// on a repeat. 0 = off.
    #[arg(long, default_value_t = WorkerOptions::RENDER_CACHE_BYTES.default,
          value_parser = clap::value_parser!(u64).range(WorkerOptions::RENDER_CACHE_BYTES.range))]
    pub render_cache_bytes: u64,
    /// Development mode (`ssrd dev`): a failed job's fallback markup shows
    /// its error to the page's author. Never in production: an error's
    /// message and stack are for developers, not for a page's visitors.
    #[arg(long)]
    pub dev: bool,
}

impl WorkerOptions {
    /// `--render-timeout-ms`: per-job render deadline.
    pub const RENDER_TIMEOUT_MS: Limit<u64> = Limit {
        default: 1000,
        range: 1..=600_000,
    };
    /// `--request-budget-ms`: the most one request may render for, all its
    /// jobs together. Well under haproxy's and nginx's upstream timeouts
    /// (60 s), so neither gives up on a worker that is still rendering.
    pub const REQUEST_BUDGET_MS: Limit<u64> = Limit {
        default: 5000,
        range: 1..=3_600_000,
    };
    /// `--heap-limit-mb`: the isolate's JS heap limit.
    pub const HEAP_LIMIT_MB: Limit<u64> = Limit {
        default: 256,
        range: 16..=16_384,
    };
    /// `--semi-space-mb`: SSR makes lots of short-lived garbage; a larger
    /// semi-space means fewer scavenges (bench/README.md).
    pub const SEMI_SPACE_MB: Limit<u64> = Limit {
        default: 16,
        range: 1..=256,
    };
    /// `--max-html-mb`: the largest answer (HTML plus meta) of one job.
    pub const MAX_HTML_MB: Limit<u64> = Limit {
        default: 32,
        range: 1..=1024,
    };
    /// `--warmup-rounds`: times each warm-up job is rendered before ready.
    pub const WARMUP_ROUNDS: Limit<u32> = Limit {
        default: 3,
        range: 0..=1000,
    };
    /// `--max-body-bytes`: largest accepted request body (1 GiB at most).
    pub const MAX_BODY_BYTES: Limit<u64> = Limit {
        default: 5 << 20,
        range: 1..=(1 << 30),
    };
    /// `--max-batch-jobs`: the most jobs one `/batch` request may hold.
    pub const MAX_BATCH_JOBS: Limit<u64> = Limit {
        default: 1000,
        range: 1..=100_000,
    };
    /// `--header-timeout-ms`: time a client has to send the headers.
    pub const HEADER_TIMEOUT_MS: Limit<u64> = Limit {
        default: 10_000,
        range: 1..=3_600_000,
    };
    /// `--body-timeout-ms`: time a client has to send the body.
    pub const BODY_TIMEOUT_MS: Limit<u64> = Limit {
        default: 30_000,
        range: 1..=3_600_000,
    };
    /// `--render-cache-bytes` (0: off): 64 MiB, at most 64 GiB.
    pub const RENDER_CACHE_BYTES: Limit<u64> = Limit {
        default: 64 << 20,
        range: 0..=(64 << 30),
    };
    /// `--rss-limit-mb` (0: off): room for the default 256 MiB heap, as
    /// much again outside it, and V8's own overhead.
    pub const RSS_LIMIT_MB: Limit<u64> = Limit {
        default: 1024,
        range: 0..=1_048_576,
    };

    /// A worker for `bundle` on a free port, every other option at its
    /// default (the defaults above, as clap fills them in).
    pub fn new(bundle: PathBuf) -> WorkerOptions {
        let mut args: Vec<OsString> = vec!["--bundle".into(), bundle.into()];
        args.extend(["--port".into(), "0".into()]);
        // Only a wrong declaration above can fail this; a unit test parses it.
        WorkerOptions::try_parse_from(args).unwrap_or_else(|e| panic!("worker defaults: {e}"))
    }

    /// Parses worker arguments (without the program or subcommand name).
    pub fn try_parse_from<I, T>(args: I) -> Result<WorkerOptions, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let command = WorkerOptions::augment_args(clap::Command::new("worker"));
        let matches = command.try_get_matches_from(
            std::iter::once(OsString::from("worker")).chain(args.into_iter().map(Into::into)),
        )?;
        WorkerOptions::from_arg_matches(&matches)
    }

    /// The arguments that parse back to these options (after `ssrd
    /// worker`): every option, as `--name=value`.
    pub fn to_args(&self) -> Vec<OsString> {
        // Destructured so that a new option cannot be left out here.
        let WorkerOptions {
            engine:
                RenderOptions {
                    bundle,
                    render_timeout_ms,
                    heap_limit_mb,
                    semi_space_mb,
                    v8_flags,
                    warmup_rounds,
                    max_html_mb,
                    isolation,
                    request_budget_ms,
                    rss_limit_mb,
                },
            port,
            listen_fd,
            host,
            max_body_bytes,
            max_batch_jobs,
            snapshot,
            header_timeout_ms,
            body_timeout_ms,
            bundle_id,
            events,
            events_fd,
            slate_fd,
            control,
            render_cache_bytes,
            dev,
        } = self;
        let mut args = Argv::default();
        args.value("bundle", bundle.as_os_str());
        args.shown("render-timeout-ms", render_timeout_ms);
        args.shown("heap-limit-mb", heap_limit_mb);
        args.shown("semi-space-mb", semi_space_mb);
        args.shown("v8-flags", v8_flags);
        args.shown("warmup-rounds", warmup_rounds);
        args.shown("max-html-mb", max_html_mb);
        args.shown("isolation", isolation);
        args.shown("request-budget-ms", request_budget_ms);
        args.shown("rss-limit-mb", rss_limit_mb);
        args.maybe("port", port);
        args.maybe("listen-fd", listen_fd);
        args.shown("host", host);
        args.shown("max-body-bytes", max_body_bytes);
        args.shown("max-batch-jobs", max_batch_jobs);
        if let Some(snapshot) = snapshot {
            args.value("snapshot", snapshot.as_os_str());
        }
        args.shown("header-timeout-ms", header_timeout_ms);
        args.shown("body-timeout-ms", body_timeout_ms);
        args.maybe("bundle-id", bundle_id);
        args.switch("events", *events);
        args.maybe("events-fd", events_fd);
        args.maybe("slate-fd", slate_fd);
        args.switch("control", *control);
        args.shown("render-cache-bytes", render_cache_bytes);
        args.switch("dev", *dev);
        args.0
    }

    /// What a worker runs with. `bundle_id` empty when none was given (the
    /// binary computes it from the bundle file first).
    pub fn into_config(self) -> WorkerConfig {
        let boot = self
            .engine
            .boot_config(self.snapshot, self.engine.warmup_rounds);
        let limits = self.engine.request_limits();
        WorkerConfig {
            host: self.host,
            port: self.port.unwrap_or(0),
            listen_fd: self.listen_fd,
            boot,
            http: HttpConfig {
                max_body_bytes: self.max_body_bytes as usize,
                max_batch_jobs: self.max_batch_jobs as usize,
                header_timeout: Duration::from_millis(self.header_timeout_ms),
                body_timeout: Duration::from_millis(self.body_timeout_ms),
                drain_timeout: HttpConfig::DRAIN_TIMEOUT,
                // Filled in once the worker knows them (lib.rs).
                wrap_placement: false,
                dev_errors: self.dev,
                settings: serde_json::Value::Null,
                bundle_header: None,
            },
            v8_flags: self.engine.v8_flags,
            events: self.events,
            events_fd: self.events_fd,
            request_budget: limits.budget,
            slate_fd: self.slate_fd,
            control: self.control,
            rss_limit_bytes: limits.rss_limit,
            isolation: limits.isolation,
            render_cache_bytes: self.render_cache_bytes,
            bundle_id: self.bundle_id.unwrap_or_default(),
        }
    }
}

impl RenderOptions {
    /// How to boot an engine from these options, from `snapshot` (if any),
    /// warming up `warmup_rounds` times; renders are watched for resident
    /// memory a quarter past the RSS limit (0: not watched).
    pub fn boot_config(&self, snapshot: Option<PathBuf>, warmup_rounds: u32) -> BootConfig {
        BootConfig {
            bundle: self.bundle.clone(),
            snapshot,
            heap_limit_bytes: (self.heap_limit_mb as usize) << 20,
            semi_space_bytes: (self.semi_space_mb as usize) << 20,
            max_answer_bytes: (self.max_html_mb as usize) << 20,
            render_timeout: Duration::from_millis(self.render_timeout_ms),
            warmup_rounds,
            memory_guard_bytes: memory_guard::limit_for(self.rss_limit_mb << 20),
        }
    }

    /// What the render loop holds each request to.
    pub fn request_limits(&self) -> RequestLimits {
        RequestLimits {
            budget: Duration::from_millis(self.request_budget_ms),
            rss_limit: self.rss_limit_mb << 20,
            isolation: self.isolation,
            // `ssrd render` measures renders: it never caches them.
            cache_bytes: 0,
        }
    }
}

/// An argument list being built, every value as `--name=value` (so a value
/// that starts with a dash, such as V8 flags, is never read as a flag).
#[derive(Default)]
struct Argv(Vec<OsString>);

impl Argv {
    /// `--name=value`.
    fn value(&mut self, name: &str, value: &std::ffi::OsStr) {
        let mut arg = OsString::from(format!("--{name}="));
        arg.push(value);
        self.0.push(arg);
    }

    /// `--name=value`, the value as it is displayed.
    fn shown(&mut self, name: &str, value: &impl std::fmt::Display) {
        self.0.push(format!("--{name}={value}").into());
    }

    /// `--name=value` when there is a value.
    fn maybe(&mut self, name: &str, value: &Option<impl std::fmt::Display>) {
        if let Some(v) = value {
            self.shown(name, v);
        }
    }

    /// `--name` when on.
    fn switch(&mut self, name: &str, on: bool) {
        if on {
            self.0.push(format!("--{name}").into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<WorkerOptions, clap::Error> {
        WorkerOptions::try_parse_from(args)
    }

    #[test]
    fn defaults_round_trip() {
        let o = WorkerOptions::new(PathBuf::from("/srv/b.js"));
        assert_eq!(o.engine.render_timeout_ms, 1000);
        assert_eq!(o.engine.rss_limit_mb, 1024);
        assert_eq!(o.port, Some(0));
        assert_eq!(WorkerOptions::try_parse_from(o.to_args()).unwrap(), o);
    }

    #[test]
    fn every_option_off_its_default_round_trips() {
        let mut o = WorkerOptions::new(PathBuf::from("/srv/app bundle/b.js"));
        o.engine = RenderOptions {
            bundle: o.engine.bundle.clone(),
            render_timeout_ms: 1500,
            heap_limit_mb: 512,
            semi_space_mb: 8,
            v8_flags: "--max-lazy --no-opt".into(),
            warmup_rounds: 0,
            max_html_mb: 8,
            isolation: Isolation::Request,
            request_budget_ms: 4000,
            rss_limit_mb: 0,
        };
        o.port = None;
        o.listen_fd = Some(3);
        o.host = "127.0.0.2".parse().unwrap();
        o.max_body_bytes = 9 << 20;
        o.max_batch_jobs = 50;
        o.snapshot = Some(PathBuf::from("/srv/b.snap"));
        o.header_timeout_ms = 4000;
        o.body_timeout_ms = 5000;
        o.bundle_id = Some("ab".repeat(32));
        o.events = true;
        o.events_fd = Some(5);
        o.slate_fd = Some(4);
        o.control = true;
        o.render_cache_bytes = 0;
        let back = WorkerOptions::try_parse_from(o.to_args()).unwrap();
        assert_eq!(back, o);
        assert_ne!(back, WorkerOptions::new(o.engine.bundle.clone()));
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_flag_and_its_range() {
        for (flag, value, range) in [
            ("--render-timeout-ms", "0", "1..=600000"),
            ("--heap-limit-mb", "15", "16..=16384"),
            ("--warmup-rounds", "1001", "0..=1000"),
            ("--max-body-bytes", "1073741825", "1..=1073741824"),
            ("--rss-limit-mb", "1048577", "0..=1048576"),
        ] {
            let e = parse(&["--bundle", "b.js", "--port", "0", flag, value]).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(flag), "{flag}: {text}");
            assert!(text.contains(range), "{flag}: {text}");
        }
        assert!(parse(&["--bundle", "b.js"]).is_err(), "a port or a socket");
    }

    #[test]
    fn the_config_takes_every_value() {
        let mut o = WorkerOptions::new(PathBuf::from("b.js"));
        o.engine.rss_limit_mb = 100;
        o.max_body_bytes = 7;
        o.engine.heap_limit_mb = 64;
        let c = o.into_config();
        assert_eq!(c.rss_limit_bytes, 100 << 20);
        assert_eq!(c.boot.memory_guard_bytes, 125 << 20);
        assert_eq!(c.http.max_body_bytes, 7);
        assert_eq!(c.boot.heap_limit_bytes, 64 << 20);
        assert_eq!(c.boot.warmup_rounds, 3);
        assert_eq!(c.render_cache_bytes, 64 << 20);
    }
}
