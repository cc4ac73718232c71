//! The command line: one subcommand per job of the `ssrd` binary.
//!
//! `ssrd up`, `config` and `reload` take the tier's options, declared once
//! in config.rs. `ssrd worker` and `render` take the worker's and the
//! engine's, declared once in the worker crate (`ssrd_worker::options`),
//! which `ssrd up` also builds its workers' arguments from.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use ssrd_worker::{RenderOptions, WorkerOptions};

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
    Worker(WorkerOptions),
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
    pub engine: RenderOptions,
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
    /// Print `written` on stdout once the snapshot is on disk, before the
    /// warm-up check (`ssrd up` starts the workers from it meanwhile).
    #[arg(long)]
    pub announce: bool,
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
