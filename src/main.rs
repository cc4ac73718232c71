//! `ssrd`: the server-side rendering tier's one binary.
//!
//! Thin on purpose: parse the command line and hand over. The render worker
//! lives in the `ssrd-worker` crate (`workers/`).

mod cli;
mod render_cmd;

use clap::Parser;

use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Worker(args) => ssrd_worker::run(args.into_config(), shutdown_signal()),
        Command::Render(args) => render_cmd::run(args),
        Command::Snapshot(args) => snapshot(args),
    };
    std::process::exit(code);
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
