//! The command line: one subcommand per job of the `ssrd` binary.
//!
//! `ssrd up`, `config` and `reload` take the tier's options, declared once
//! in config.rs. `ssrd worker`, `render` and `snapshot` take the engine's
//! and the worker's, which map one to one onto `ssrd_worker::WorkerConfig`
//! and use the worker crate's defaults.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use ssrd_worker::defaults;

use ssrd_worker::{BootConfig, Isolation, WorkerConfig};

use crate::config::{Config, UpArgs};

#[derive(Parser, Debug)]
#[command(
    name = "ssrd",
    version,
    about = "Server-side rendering tier speaking Hypernova's /batch protocol"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the tier in the foreground: nginx + haproxy + N render workers,
    /// supervised (restarts, reloads on SIGHUP, recycling, metrics).
    Up(UpArgs),
    /// Print the nginx and haproxy configs `ssrd up` would use.
    Config(ConfigArgs),
    /// `ssrd up --dev`: the tier for a developer's machine. The bundle file
    /// is watched and reloaded on every save (checked first: a broken
    /// save keeps the old bundle serving and prints its error once).
    Dev(UpArgs),
    /// Ask a running `ssrd up` to reload its bundle (sends SIGHUP).
    Reload(UpArgs),
    /// Stop a running `ssrd up`: SIGTERM (drain for --drain-seconds, then
    /// a graceful stop), and wait until it has exited.
    Stop(UpArgs),
    /// Print a running tier's /health and exit 0 if it is ready (a worker
    /// in rotation, not draining), 1 if not; `--wait SECS` first waits up
    /// to that long for it to be ready. What a boot script, a dependent
    /// service or a container should wait on before sending renders.
    Health(HealthArgs),
    /// Make a running tier's nginx reopen its log files (SIGUSR1), after
    /// they were moved away (logrotate).
    ReopenLogs(UpArgs),
    /// Run one render worker: an HTTP server on loopback holding one V8
    /// isolate, rendering one request at a time. Prints one JSON line to
    /// stdout when ready; logs JSON lines to stderr.
    Worker(WorkerArgs),
    /// Render one component to stdout, for debugging a bundle.
    Render(RenderArgs),
    /// Build a V8 startup snapshot of a bundle and check it: start from it
    /// and render the bundle's warm-up jobs once (workers given `--snapshot`
    /// build it themselves when missing or stale).
    Snapshot(SnapshotArgs),
    /// Run a program so that nothing it starts outlives the process that
    /// started the tether (used by `ssrd up` for nginx).
    #[command(hide = true)]
    Tether(TetherArgs),
}

#[derive(Args, Debug)]
pub struct TetherArgs {
    /// How long the workers of a program that died may finish their
    /// requests before they are killed, ms.
    #[arg(long, default_value_t = 30_000)]
    pub drain_ms: u64,
    /// The program and its arguments, after `--`.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<std::ffi::OsString>,
}

/// Options shared by everything that runs a bundle.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// The JS bundle (see README, "The bundle contract").
    #[arg(long, env = "SSRD_BUNDLE")]
    pub bundle: PathBuf,
    /// A job running longer than this is stopped and answered as RenderTimeout.
    #[arg(long, default_value_t = defaults::RENDER_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(defaults::RENDER_TIMEOUT_MS_RANGE))]
    pub render_timeout_ms: u64,
    /// The isolate's JS heap limit. A job that exhausts it is answered as
    /// HeapLimitExceeded and the worker exits with code 75 to be replaced.
    #[arg(long, default_value_t = defaults::HEAP_LIMIT_MB, value_parser = clap::value_parser!(u64).range(defaults::HEAP_LIMIT_MB_RANGE))]
    pub heap_limit_mb: u64,
    /// V8's young-generation semi-space, MiB. SSR makes lots of short-lived
    /// garbage; a larger semi-space means fewer scavenges.
    #[arg(long, default_value_t = defaults::SEMI_SPACE_MB, value_parser = clap::value_parser!(u64).range(defaults::SEMI_SPACE_MB_RANGE))]
    pub semi_space_mb: u64,
    /// Extra V8 flags, space-separated (e.g. "--max-lazy").
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub v8_flags: String,
    /// Times each of the bundle's warm-up jobs is rendered before serving
    /// (`ssrd render`: before the measured renders, with --repeat only).
    #[arg(long, default_value_t = defaults::WARMUP_ROUNDS, value_parser = clap::value_parser!(u32).range(defaults::clap_range(defaults::WARMUP_ROUNDS_RANGE)))]
    pub warmup_rounds: u32,
    /// The largest answer (HTML plus meta) one job may return, MiB; a
    /// larger one fails the job with AnswerTooLarge.
    #[arg(long, default_value_t = defaults::MAX_HTML_MB, value_parser = clap::value_parser!(u64).range(defaults::MAX_HTML_MB_RANGE))]
    pub max_html_mb: u64,
    /// shared: one isolate serves every request (module state and globals
    /// persist; built-ins are frozen). request: each request (`ssrd render
    /// --repeat`: each iteration) gets a fresh isolate from the snapshot.
    #[arg(long, default_value_t = Isolation::Shared)]
    pub isolation: Isolation,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
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
    #[arg(long, default_value_t = defaults::MAX_BODY_BYTES as u64, value_parser = clap::value_parser!(u64).range(defaults::MAX_BODY_BYTES_RANGE))]
    pub max_body_bytes: u64,
    /// The most jobs one /batch request may hold; a larger batch is refused
    /// (400) before anything renders.
    #[arg(long, default_value_t = defaults::MAX_BATCH_JOBS, value_parser = clap::value_parser!(u64).range(defaults::MAX_BATCH_JOBS_RANGE))]
    pub max_batch_jobs: u64,
    /// Start from this V8 snapshot of the bundle; built and written here
    /// first if missing or made from another bundle.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// Time allowed for a client to send request headers, ms.
    #[arg(long, default_value_t = defaults::HEADER_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(defaults::CLIENT_TIMEOUT_MS_RANGE))]
    pub header_timeout_ms: u64,
    /// Time allowed for a client to send the request body, ms.
    #[arg(long, default_value_t = defaults::BODY_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(defaults::CLIENT_TIMEOUT_MS_RANGE))]
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
    /// The most one request may render for, all its jobs together, ms;
    /// jobs past it are answered RenderTimeout without running.
    #[arg(long, default_value_t = defaults::REQUEST_BUDGET_MS, value_parser = clap::value_parser!(u64).range(defaults::REQUEST_BUDGET_MS_RANGE))]
    pub request_budget_ms: u64,
    /// Name the request in flight in this inherited file (the supervisor
    /// reads it if the process dies mid-render).
    #[arg(long)]
    pub slate_fd: Option<i32>,
    /// Read control lines (quarantined requests) from stdin.
    #[arg(long)]
    pub control: bool,
    /// Retire (exit 76) after a request that left the process's resident
    /// memory above this many MiB; a render that takes it a quarter past
    /// this is stopped at once (MemoryLimitExceeded). 0 = never.
    #[arg(long, default_value_t = defaults::RSS_LIMIT_MB, value_parser = clap::value_parser!(u64).range(defaults::RSS_LIMIT_MB_RANGE))]
    pub rss_limit_mb: u64,
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The registered component name.
    #[arg(required_unless_present = "batch")]
    pub name: Option<String>,
    /// Render every job of this Hypernova batch body instead (with
    /// --repeat: the in-isolate ceiling for that batch). Prints the batch
    /// response.
    #[arg(long, conflicts_with_all = ["name", "props"])]
    pub batch: Option<PathBuf>,
    /// A file holding the props as JSON, or "-" for stdin; none means {}.
    pub props: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Render this many times in the one isolate (after the bundle's warm-up)
    /// and print throughput as JSON to stderr: the ceiling any HTTP tier on
    /// this machine is measured against. The HTML of the last render is printed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeat: u64,
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// The JS bundle.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Where to write the snapshot.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct HealthArgs {
    #[command(flatten)]
    pub up: UpArgs,
    /// Wait up to this many seconds for the tier to be ready.
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub up: UpArgs,
    /// Also write the configs to the run dir and check them with `nginx -t`
    /// and `haproxy -c`.
    #[arg(long)]
    pub check: bool,
}

/// The command line, with every `ssrd up` option's default shown in its
/// help (the defaults live in `Config::default()`, once).
pub fn command() -> clap::Command {
    let defaults = Config::default();
    let with_defaults = |mut cmd: clap::Command| {
        for name in Config::OPTION_NAMES {
            let shown = defaults.show(name).unwrap_or_default();
            let shown = if shown.is_empty() {
                "none".into()
            } else {
                shown
            };
            cmd = cmd.mut_arg(*name, |arg| {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                arg.help(format!("{help} [default: {shown}]"))
            });
        }
        cmd
    };
    Cli::command()
        .mut_subcommand("up", with_defaults)
        .mut_subcommand("config", with_defaults)
        .mut_subcommand("reload", with_defaults)
}

/// Parses the process's arguments (exits with clap's usage error, code 2,
/// on bad ones).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

impl EngineArgs {
    /// How to boot an engine from these options.
    pub fn boot_config(&self, snapshot: Option<PathBuf>, warmup_rounds: u32) -> BootConfig {
        BootConfig {
            bundle: self.bundle.clone(),
            snapshot,
            heap_limit_bytes: (self.heap_limit_mb as usize) << 20,
            semi_space_bytes: (self.semi_space_mb as usize) << 20,
            max_answer_bytes: (self.max_html_mb as usize) << 20,
            render_timeout: Duration::from_millis(self.render_timeout_ms),
            warmup_rounds,
            memory_guard_bytes: 0,
        }
    }
}

impl WorkerArgs {
    pub fn into_config(self) -> WorkerConfig {
        let mut c = WorkerConfig::new(self.engine.bundle.clone(), self.port.unwrap_or(0));
        c.host = self.host;
        c.listen_fd = self.listen_fd;
        c.boot = self
            .engine
            .boot_config(self.snapshot, self.engine.warmup_rounds);
        c.v8_flags = self.engine.v8_flags;
        c.events = self.events;
        c.events_fd = self.events_fd;
        c.request_budget = Duration::from_millis(self.request_budget_ms);
        c.slate_fd = self.slate_fd;
        c.control = self.control;
        c.rss_limit_bytes = self.rss_limit_mb << 20;
        c.boot.memory_guard_bytes = defaults::memory_guard_bytes(c.rss_limit_bytes);
        c.isolation = self.engine.isolation;
        c.bundle_id = self
            .bundle_id
            .unwrap_or_else(|| crate::bundle_store::sha256_of_file(&self.engine.bundle));
        c.http.max_body_bytes = self.max_body_bytes as usize;
        c.http.max_batch_jobs = self.max_batch_jobs as usize;
        c.http.header_timeout = Duration::from_millis(self.header_timeout_ms);
        c.http.body_timeout = Duration::from_millis(self.body_timeout_ms);
        c
    }
}
