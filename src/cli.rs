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
    /// Extra V8 flags, space-separated (e.g. "--max-semi-space-size=32").
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub v8_flags: String,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Port to listen on; 0 picks a free port (reported in the ready line).
    #[arg(long)]
    pub port: u16,
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
    pub name: String,
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

impl EngineArgs {
    pub fn render_timeout(&self) -> Duration {
        Duration::from_millis(self.render_timeout_ms)
    }

    pub fn heap_limit_bytes(&self) -> usize {
        (self.heap_limit_mb as usize) << 20
    }
}

impl WorkerArgs {
    pub fn into_config(self) -> ssrd_worker::WorkerConfig {
        let mut c = ssrd_worker::WorkerConfig::new(self.engine.bundle.clone(), self.port);
        c.host = self.host;
        c.renderer.render_timeout = self.engine.render_timeout();
        c.renderer.heap_limit_bytes = self.engine.heap_limit_bytes();
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
