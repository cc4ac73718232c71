//! `ssrd`: the server-side rendering tier's one binary.
//!
//! Thin on purpose: parse the command line and hand over.
//!
//! - [`cli`]: the subcommands and their flags; [`options`] + [`config`]:
//!   every `ssrd up` option declared once (flag, TOML key, default);
//! - [`up`]: checks and start-up of the tier ([`preflight`]; [`templates`]
//!   renders the nginx and haproxy configs, [`configs`] writes them), then
//!   hands over to the [`supervisor`], which keeps it running;
//! - [`rundir`]: the private run dir; [`leftovers`]: what a crashed tier
//!   left there; [`bundle_store`]: the bundles the tier accepted;
//!   [`bundle_check`]: `up`'s check of the bundle, which writes the snapshot;
//! - [`tether`]: `ssrd tether`, which keeps nginx's processes from
//!   outliving the supervisor;
//! - [`render_cmd`]: `ssrd render`, one render without HTTP;
//! - [`health_cmd`]: `ssrd health`, a running tier's readiness;
//! - [`error`]: `UpError`, the kind of failure and its exit code.
//!
//! The render worker (`ssrd worker`) lives in the `ssrd-worker` crate
//! (`workers/`).

mod bundle_check;
mod bundle_store;
mod cli;
mod config;
mod configs;
mod error;
mod health_cmd;
mod leftovers;
mod options;
mod preflight;
mod render_cmd;
mod rundir;
mod supervisor;
mod templates;
mod tether;
mod up;

use cli::Command;
use config::Config;

fn main() {
    let code = match cli::parse().command {
        Command::Up(args) => args.resolve().map(up::up),
        Command::Dev(args) => args.resolve().map(|config| {
            up::up(Config {
                dev: true,
                ..config
            })
        }),
        Command::Config(args) => args
            .up
            .resolve()
            .and_then(|c| up::print_config(c, args.check))
            .map(|()| 0),
        Command::Reload(args) => args.resolve().and_then(|c| up::reload(&c)).map(|()| 0),
        Command::Stop(args) => args.resolve().and_then(|c| up::stop(&c)).map(|()| 0),
        Command::Health(args) => args
            .up
            .resolve()
            .map(|c| health_cmd::run(&c, std::time::Duration::from_secs(args.wait))),
        Command::ReopenLogs(args) => args.resolve().and_then(|c| up::reopen_logs(&c)).map(|()| 0),
        Command::Worker(mut args) => {
            // The bundle's id, when the supervisor did not pass it.
            if args.bundle_id.is_none() {
                args.bundle_id = Some(bundle_store::sha256_of_file(&args.engine.bundle));
            }
            Ok(ssrd_worker::run(args.into_config(), shutdown_signal()))
        }
        Command::Render(args) => Ok(render_cmd::run(args)),
        Command::Snapshot(args) => Ok(snapshot(args)),
        Command::Tether(args) => Ok(tether::run(
            &args.command[0],
            &args.command[1..],
            std::time::Duration::from_millis(args.drain_ms),
        )),
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

/// `ssrd snapshot`: builds the snapshot, then starts an engine from it and
/// renders the bundle's warm-up jobs once, as a worker would before taking
/// traffic: a bundle that passes this check can serve.
fn snapshot(args: cli::SnapshotArgs) -> i32 {
    let result = ssrd_worker::Bundle::load(&args.bundle).and_then(|bundle| {
        let blob = ssrd_worker::snapshot::create(&bundle)?;
        ssrd_worker::snapshot::write(&args.out, &bundle, &blob)?;
        if args.announce {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", bundle_check::WRITTEN);
            let _ = out.flush();
            // The workers start from the snapshot now, on the same cores:
            // they come first, the rest of this check after.
            // SAFETY: setpriority on this process only; no memory involved.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 10);
            }
        }
        let mut check = ssrd_worker::WorkerOptions::new(args.bundle.clone())
            .into_config()
            .boot;
        check.snapshot = Some(args.out.clone());
        check.warmup_rounds = 1;
        ssrd_worker::boot::boot(&check)?;
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
