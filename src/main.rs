//! `ssrd`: the server-side rendering tier's one binary.
//!
//! Thin on purpose: parse the command line and hand over. The render worker
//! lives in the `ssrd-worker` crate (`workers/`); the supervisor's pieces
//! are the modules below, one responsibility each.

mod cli;
mod config;
mod haproxy_api;
mod metrics;
mod preflight;
mod recycle;
mod reload;
mod render_cmd;
mod restart;
mod signals;
mod spawn;
mod supervisor;
mod templates;
mod up;

use clap::Parser;

use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Up(args) => with_config(&args, up::up),
        Command::Config(args) => with_config(&args.up, |c| up::print_config(c, args.check)),
        Command::Reload(args) => with_config(&args, |c| up::reload(&c)),
        Command::Worker(args) => ssrd_worker::run(args.into_config(), shutdown_signal()),
        Command::Render(args) => render_cmd::run(args),
        Command::Snapshot(args) => snapshot(args),
    };
    std::process::exit(code);
}

fn with_config(args: &cli::UpArgs, f: impl FnOnce(config::Config) -> i32) -> i32 {
    match args.resolve() {
        Ok(config) => f(config),
        Err(e) => {
            eprintln!("ssrd: {e}");
            2
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the default action (exit) still applies.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn snapshot(args: cli::SnapshotArgs) -> i32 {
    let result = ssrd_worker::Bundle::load(&args.bundle).and_then(|bundle| {
        let blob = ssrd_worker::snapshot::create(&bundle)?;
        ssrd_worker::snapshot::write(&args.out, &bundle, &blob)?;
        Ok(blob.len())
    });
    match result {
        Ok(n) => {
            eprintln!("wrote {} ({n} bytes)", args.out.display());
            ssrd_worker::exit_code::OK
        }
        Err(e) => {
            eprintln!("{}", e.to_json());
            ssrd_worker::exit_code::BUNDLE
        }
    }
}
