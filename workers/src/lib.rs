//! The ssrd render worker.
//!
//! One process, one V8 isolate (deno_core) holding a JS bundle, one request
//! at a time. A request's path through the crate:
//!
//! [`http`] reads it (limits, timeouts) → [`protocol`] parses Hypernova's
//! `/batch` wire format into render requests (tokens kept aside) →
//! [`render`] hands them to the one render thread → [`js_runtime`] calls
//! the bundle in V8, bounded by the [`watchdog`] → render outcomes back to
//! [`http`], which [`protocol`] writes as the wire answer under the tokens;
//! [`events`] for the supervisor.
//!
//! The pieces, one file each:
//!
//! - [`options`]: the worker's flags, defaults and ranges, declared once;
//!   [`config`]: what a worker runs with, made from them;
//! - [`boot`]: bundle or snapshot → engine → warm-up (also `ssrd render`);
//! - [`js_runtime`]: the isolate and the render call; [`bundle`]: the
//!   bundle's source and source map, evaluating it, V8's process flags;
//!   [`memory`]: heap guard, off-heap budget, WebAssembly caps;
//!   [`memory_guard`]: resident memory watched while a render runs;
//!   [`malloc`]: the C heap tuned for per-request buffers, trimmed when idle;
//! - [`job`]: a job's result or failure, as the engine produces them (no
//!   wire: [`protocol`] writes them in Hypernova's shapes);
//! - [`web_apis`]: the web APIs bundles get (from deno_web) and nothing more;
//!   [`sandbox`]: the host's internals kept out of the bundle's reach;
//! - [`watchdog`]: ends renders that run past their deadline;
//! - [`snapshot`]: V8 startup snapshots of the evaluated bundle;
//! - [`stack_map`]: a failed job's stack mapped through the bundle's source
//!   map to the author's files;
//! - [`render`]: the render thread and its queue (mutual exclusion; one
//!   file each for the queue, the loop, the counters, the reporter, retiring);
//! - [`answer`]: what a render returned, read into the job's outcome;
//! - [`http`]: the HTTP/1.1 server (hyper): the accept loop and routing, the
//!   render handlers, `/stats`, responses; [`body`]: reading a request body
//!   within its limits;
//! - [`protocol`]: Hypernova's `/batch` wire format;
//! - [`markup`]: Hypernova's placement markup (server HTML or fallback);
//! - [`events`]: the supervisor contract: event lines and exit codes;
//! - [`procfs`]: what the process reads about itself (RSS);
//! - [`slate`]: names the request in flight, for the supervisor;
//!   [`quarantine`]: requests refused because they crashed workers;
//!   [`hangups`]: callers that went away, as the supervisor reports them;
//!   [`control`]: the supervisor's control lines on stdin;
//! - [`error`], [`log`]: one error type; JSON-lines logs.
//!
//! [`run`] ties them together for `ssrd worker`.

pub mod answer;
pub mod body;
pub mod boot;
pub mod bundle;
pub mod config;
pub mod control;
pub mod error;
pub mod event_sink;
pub mod events;
pub mod hangups;
pub mod http;
pub mod job;
pub mod js_runtime;
pub mod log;
pub mod malloc;
pub mod markup;
pub mod memory;
pub mod memory_guard;
pub mod options;
pub mod procfs;
pub mod protocol;
pub mod quarantine;
pub mod render;
pub mod sandbox;
pub mod slate;
pub mod snapshot;
pub mod stack_map;
pub mod trace;
pub mod watchdog;
pub mod web_apis;

use std::future::Future;
use std::net::SocketAddr;

use serde_json::json;

pub use boot::BootConfig;
pub use bundle::Bundle;
pub use config::{Isolation, WorkerConfig};
pub use error::{Error, ErrorKind, Result};
pub use events::exit_code;
pub use js_runtime::{Engine, EngineOptions};
pub use options::{RenderOptions, WorkerOptions};

/// Runs a worker until `shutdown` resolves or the isolate must be retired.
/// Prints one JSON line to stdout when ready. Returns the exit code.
pub fn run(config: WorkerConfig, shutdown: impl Future<Output = ()>) -> i32 {
    malloc::tune();
    if let Err(e) = boot::set_v8_flags(&config.boot, &config.v8_flags) {
        log::error("bad --v8-flags", json!({"error": e.to_string()}));
        return exit_code::FAILURE;
    }
    // Bind before the slow part so a taken port fails at once.
    let listener = match listen(&config) {
        Ok(l) => l,
        Err(e) => {
            log::error("cannot listen", json!({"error": e}));
            return exit_code::FAILURE;
        }
    };
    let events = match (config.events_fd, config.events) {
        // SAFETY: the supervisor hands the descriptor over for this process
        // to own.
        (Some(fd), _) => event_sink::EventSink::to(Box::new(unsafe {
            <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd)
        })),
        (None, true) => event_sink::EventSink::to(Box::new(std::io::stdout())),
        (None, false) => event_sink::EventSink::disabled(),
    };
    let mut http_config = config.http.clone();
    http_config.settings = config.settings();
    http_config.bundle_header = Some(config.bundle_short())
        .filter(|id| !id.is_empty())
        .and_then(|id| hyper::header::HeaderValue::from_str(id).ok());
    // SAFETY: the supervisor hands the slate over for this process to own.
    let slate = match config.slate_fd {
        Some(fd) => unsafe { slate::Slate::from_fd(fd) },
        None => slate::Slate::default(),
    };
    let quarantine = quarantine::Quarantine::default();
    let hangups = hangups::Hangups::default();
    if config.control {
        control::follow_stdin(quarantine.clone(), hangups.clone());
    }
    let limits = render::RequestLimits {
        budget: config.request_budget,
        rss_limit: config.rss_limit_bytes,
        isolation: config.isolation,
        cache_bytes: config.render_cache_bytes,
    };
    let started = render::start(config.boot.clone(), limits, slate, events.clone());
    let (queue, boot, retire) = match started {
        Ok(ok) => ok,
        Err(e) => {
            log::error("worker failed to start", json!({"error": e.to_string()}));
            return match e.kind {
                ErrorKind::Bundle | ErrorKind::Snapshot => exit_code::BUNDLE,
                _ => exit_code::FAILURE,
            };
        }
    };
    let http_rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error(
                "cannot start the HTTP runtime",
                json!({"error": e.to_string()}),
            );
            return exit_code::FAILURE;
        }
    };
    http_config.wrap_placement = boot.placement;
    http_rt.block_on(async move {
        let local = listener.local_addr().map(|a| a.port()).unwrap_or(config.port);
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
        {
            Ok(l) => l,
            Err(e) => {
                log::error("cannot listen", json!({"error": e.to_string()}));
                return exit_code::FAILURE;
            }
        };
        let ready = events::Ready {
            ready: true,
            port: local,
            pid: std::process::id(),
            boot_ms: round3(boot.boot_ms),
            warmup_ms: round3(boot.warmup_ms),
            snapshot: boot.snapshot.to_string(),
            rss_bytes: procfs::rss_bytes(),
        };
        let event = events::Event::Ready(ready);
        // The ready line goes through the event writer when events are on,
        // so it is never interleaved with (or overtaken by) an event.
        if events.enabled() {
            events.emit(&event);
        } else {
            use std::io::Write;
            // A closed stdout must not take the worker down.
            let line = serde_json::to_string(&event).unwrap_or_default();
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
        log::info("worker ready", serde_json::to_value(&event).unwrap_or_default());
        let (retire_tx, retire_rx) = tokio::sync::oneshot::channel();
        let stop = async move {
            tokio::select! {
                _ = shutdown => {}
                reason = retire => {
                    if let Ok(reason) = reason {
                        log::warn("retiring: over a memory limit", json!({"reason": format!("{reason:?}")}));
                        let _ = retire_tx.send(reason);
                    }
                }
            }
        };
        let tracing = trace::Tracing::from_env().unwrap_or_else(|e| {
            log::warn(
                "tracing is off: the OpenTelemetry setup failed",
                json!({"error": e}),
            );
            trace::Tracing::default()
        });
        let links = http::Links {
            quarantine,
            hangups,
            events: events.clone(),
            tracing: tracing.clone(),
        };
        http::serve(listener, queue, links, http_config, stop).await;
        // The last requests' events, held back to go out in a batch,
        // reach the supervisor before the process exits.
        let _ = tokio::task::spawn_blocking(move || {
            events.flush(event_sink::COALESCE * 10);
        })
        .await;
        // What is queued goes out before the process exits (bounded by
        // the exporter's timeout), off the async runtime.
        let _ = tokio::task::spawn_blocking(move || tracing.shutdown()).await;
        match retire_rx.await {
            Ok(reason) => reason.exit_code(),
            Err(_) => exit_code::OK,
        }
    })
}

fn listen(config: &WorkerConfig) -> std::result::Result<std::net::TcpListener, String> {
    match config.listen_fd {
        Some(fd) => {
            use std::os::fd::FromRawFd;
            // SAFETY: the fd was handed over by the supervisor for this
            // process to own; it is checked to be a listening TCP socket.
            let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            listener
                .local_addr()
                .map(|_| listener)
                .map_err(|e| format!("--listen-fd {fd} is not a listening TCP socket: {e}"))
        }
        None => {
            let addr = SocketAddr::new(config.host, config.port);
            std::net::TcpListener::bind(addr).map_err(|e| format!("{addr}: {e}"))
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
