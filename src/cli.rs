//! The command line: `ssrd worker`, `ssrd render`, `ssrd snapshot`.
//!
//! Flags map one to one onto `ssrd_worker::WorkerConfig`; defaults live here
//! so `--help` shows them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

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
    /// Ask a running `ssrd up` to reload its bundle (sends SIGHUP).
    Reload(UpArgs),
    /// Run one render worker: an HTTP server on loopback holding one V8
    /// isolate, rendering one request at a time. Prints one JSON line to
    /// stdout when ready; logs JSON lines to stderr.
    Worker(WorkerArgs),
    /// Render one component to stdout, for debugging a bundle.
    Render(RenderArgs),
    /// Build a V8 startup snapshot of a bundle (workers given `--snapshot`
    /// build it themselves when missing or stale).
    Snapshot(SnapshotArgs),
}

/// Options shared by everything that runs a bundle.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// The JS bundle (see README: Bundle contract).
    #[arg(long, env = "SSRD_BUNDLE")]
    pub bundle: PathBuf,
    /// A job running longer than this is stopped and answered as RenderTimeout.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub render_timeout_ms: u64,
    /// The isolate's JS heap limit. A job that exhausts it is answered as
    /// HeapLimitExceeded and the worker exits with code 75 to be replaced.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(16..=16_384))]
    pub heap_limit_mb: u64,
    /// V8's young-generation semi-space, MiB. SSR makes lots of short-lived
    /// garbage; a larger semi-space means fewer scavenges.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub semi_space_mb: u64,
    /// Extra V8 flags, space-separated (e.g. "--max-lazy").
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub v8_flags: String,
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
    #[arg(long, default_value_t = 5 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Start from this V8 snapshot of the bundle; built and written here
    /// first if missing or made from another bundle.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// Times each of the bundle's warm-up jobs is rendered before ready.
    #[arg(long, default_value_t = 3)]
    pub warmup_rounds: u32,
    /// Time allowed for a client to send request headers.
    #[arg(long, default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// Time allowed for a client to send the request body.
    #[arg(long, default_value_t = 30_000)]
    pub body_timeout_ms: u64,
    /// After the ready line, write per-request events and a heartbeat every
    /// second as JSON lines on stdout (the supervisor reads them).
    #[arg(long)]
    pub events: bool,
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

/// Options of the tier. Each can also be set in the TOML file given with
/// --config (same names, with underscores); flags win over the file.
#[derive(Args, Debug, Clone, Default)]
pub struct UpArgs {
    /// TOML file with any of the options below.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The JS bundle every worker loads [default: js-bundle/dist/server.js]
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Number of render workers [default: number of CPUs]
    #[arg(long)]
    pub workers: Option<usize>,
    /// Address nginx listens on, the tier's public address [default: 127.0.0.1]
    #[arg(long)]
    pub host: Option<IpAddr>,
    /// nginx port: where callers send /batch [default: 9000]
    #[arg(long)]
    pub port: Option<u16>,
    /// haproxy frontend port (loopback) [default: 9001]
    #[arg(long)]
    pub haproxy_port: Option<u16>,
    /// First worker port; workers use consecutive ports [default: 9002]
    #[arg(long)]
    pub worker_base_port: Option<u16>,
    /// haproxy stats page port (loopback) [default: 8999]
    #[arg(long)]
    pub stats_port: Option<u16>,
    /// Prometheus /metrics port (loopback) [default: 9100]
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// haproxy balance algorithm [default: first]
    #[arg(long, value_enum)]
    pub balance: Option<crate::config::Balance>,
    /// Directory for rendered configs, sockets, pid and log files [default: $TMPDIR/ssrd]
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Per-job render deadline, ms [default: 1000]
    #[arg(long)]
    pub render_timeout_ms: Option<u64>,
    /// Each worker's JS heap limit, MiB [default: 256]
    #[arg(long)]
    pub heap_limit_mb: Option<u64>,
    /// Each worker's V8 young-generation semi-space, MiB [default: 16]
    #[arg(long)]
    pub semi_space_mb: Option<u64>,
    /// Largest request body, MiB (buffered whole, in memory, by nginx) [default: 5]
    #[arg(long)]
    pub max_body_mb: Option<u64>,
    /// Longest wait in haproxy's queue for a free worker, ms [default: 10000]
    #[arg(long)]
    pub queue_timeout_ms: Option<u64>,
    /// Time a caller has to send its request, ms [default: 10000]
    #[arg(long)]
    pub client_timeout_ms: Option<u64>,
    /// Longest a request may take through the tier, ms [default: 60000]
    #[arg(long)]
    pub upstream_timeout_ms: Option<u64>,
    /// Recycle a worker after about this many requests (±20 %); 0 = never [default: 0]
    #[arg(long)]
    pub recycle_requests: Option<u64>,
    /// Recycle a worker whose JS heap reaches this % of its limit [default: 80]
    #[arg(long)]
    pub recycle_heap_percent: Option<u64>,
    /// Recycle a worker whose RSS reaches this many MiB; 0 = never [default: 1024]
    #[arg(long)]
    pub recycle_rss_mb: Option<u64>,
    /// Kill a worker whose render thread is silent this long, ms [default: 10000]
    #[arg(long)]
    pub heartbeat_timeout_ms: Option<u64>,
    /// On SIGTERM, how long in-flight requests may take, ms [default: 30000]
    #[arg(long)]
    pub shutdown_timeout_ms: Option<u64>,
    /// Start workers from a V8 snapshot of the bundle [default: true]
    #[arg(long)]
    pub snapshot: Option<bool>,
    /// Extra V8 flags for every worker, space-separated [default: none]
    #[arg(long, allow_hyphen_values = true)]
    pub v8_flags: Option<String>,
    /// nginx binary [default: nginx, from PATH]
    #[arg(long)]
    pub nginx: Option<PathBuf>,
    /// haproxy binary [default: haproxy, from PATH]
    #[arg(long)]
    pub haproxy: Option<PathBuf>,
    /// Write nginx's JSON access log to the run dir [default: true]
    #[arg(long)]
    pub access_log: Option<bool>,
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

impl UpArgs {
    /// Defaults, then the --config file, then flags.
    pub fn resolve(&self) -> Result<crate::config::Config, String> {
        let mut c = match &self.config {
            Some(path) => crate::config::Config::from_file(path)?,
            None => crate::config::Config::default(),
        };
        macro_rules! take {
            ($($field:ident),*) => {
                $( if let Some(v) = &self.$field { c.$field = v.clone(); } )*
            };
        }
        take!(
            bundle,
            workers,
            host,
            port,
            haproxy_port,
            worker_base_port,
            stats_port,
            metrics_port,
            balance,
            run_dir,
            render_timeout_ms,
            heap_limit_mb,
            max_body_mb,
            queue_timeout_ms,
            client_timeout_ms,
            upstream_timeout_ms,
            recycle_requests,
            recycle_heap_percent,
            recycle_rss_mb,
            heartbeat_timeout_ms,
            shutdown_timeout_ms,
            snapshot,
            v8_flags,
            nginx,
            haproxy,
            access_log
        );
        c.validate()?;
        Ok(c)
    }
}

impl EngineArgs {
    pub fn render_timeout(&self) -> Duration {
        Duration::from_millis(self.render_timeout_ms)
    }

    pub fn heap_limit_bytes(&self) -> usize {
        (self.heap_limit_mb as usize) << 20
    }

    pub fn semi_space_bytes(&self) -> usize {
        (self.semi_space_mb as usize) << 20
    }
}

impl WorkerArgs {
    pub fn into_config(self) -> ssrd_worker::WorkerConfig {
        let mut c =
            ssrd_worker::WorkerConfig::new(self.engine.bundle.clone(), self.port.unwrap_or(0));
        c.host = self.host;
        c.listen_fd = self.listen_fd;
        c.renderer.render_timeout = self.engine.render_timeout();
        c.renderer.heap_limit_bytes = self.engine.heap_limit_bytes();
        c.renderer.semi_space_bytes = self.engine.semi_space_bytes();
        c.v8_flags = self.engine.v8_flags.clone();
        c.events = self.events;
        c.renderer.snapshot = self.snapshot;
        c.renderer.warmup_rounds = self.warmup_rounds;
        c.http.max_body_bytes = self.max_body_bytes;
        c.http.header_timeout = Duration::from_millis(self.header_timeout_ms);
        c.http.body_timeout = Duration::from_millis(self.body_timeout_ms);
        c
    }
}
