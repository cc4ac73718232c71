//! `ssrd`: the server-side rendering tier's one binary.
//!
//! Thin on purpose: parse the command line and hand over.
//!
//! - [`cli`]: the subcommands and their flags; [`options`] + [`config`]:
//!   every `ssrd up` option declared once (flag, TOML key, default);
//! - [`up`]: checks and start-up of the tier ([`preflight`], [`templates`]
//!   render the nginx and haproxy configs), then hands over to the
//!   [`supervisor`], which keeps it running;
//! - [`render_cmd`]: `ssrd render`, one render without HTTP;
//! - [`error`]: `UpError`, the kind of failure and its exit code.
//!
//! The render worker (`ssrd worker`) lives in the `ssrd-worker` crate
//! (`workers/`).

mod cli;
mod config;
mod error;
mod options;
mod preflight;
mod render_cmd;
mod supervisor;
mod templates;
mod up;

use cli::Command;

fn main() {
    let code = match cli::parse().command {
        Command::Up(args) => args.resolve().map(up::up),
        Command::Config(args) => args
            .up
            .resolve()
            .and_then(|c| up::print_config(c, args.check))
            .map(|()| 0),
        Command::Reload(args) => args.resolve().and_then(|c| up::reload(&c)).map(|()| 0),
        Command::Worker(args) => Ok(ssrd_worker::run(args.into_config(), shutdown_signal())),
        Command::Render(args) => Ok(render_cmd::run(args)),
        Command::Snapshot(args) => Ok(snapshot(args)),
    };
    std::process::exit(code.unwrap_or_else(|e| e.report()));
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
