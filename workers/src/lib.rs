//! The ssrd render worker.
//!
//! One process, one V8 isolate (deno_core) holding a JS bundle, one request
//! at a time. The pieces, one file each:
//!
//! - [`js_runtime`]: the isolate, the bundle, the render call, heap guard;
//! - [`web_apis`]: the web APIs bundles get (from deno_web) and nothing more;
//! - [`watchdog`]: ends renders that run past their deadline;
//! - [`snapshot`]: V8 startup snapshots of the evaluated bundle;
//! - [`renderer`]: the render thread and its queue (mutual exclusion);
//! - [`http`]: the HTTP/1.1 server (hyper) and its routes;
//! - [`protocol`]: Hypernova's `/batch` wire format;
//! - [`markup`]: Hypernova's placement markup (server HTML or fallback);
//! - [`events`]: per-request events and heartbeats for the supervisor;
//! - [`error`], [`log`]: one error type; JSON-lines logs.
//!
//! [`run`] ties them together for `ssrd worker`.

pub mod error;
pub mod events;
pub mod http;
pub mod js_runtime;
pub mod log;
pub mod markup;
pub mod protocol;
pub mod renderer;
pub mod snapshot;
pub mod watchdog;
pub mod web_apis;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

pub use error::{Error, ErrorKind, Result};
pub use js_runtime::{Bundle, Engine, EngineOptions};
pub use renderer::RendererConfig;

/// Process exit codes of `ssrd worker`, part of the supervisor contract.
pub mod exit_code {
    /// Stopped on request (SIGTERM/SIGINT) after finishing in-flight work.
    pub const OK: i32 = 0;
    /// Could not start: bad flags, port taken, I/O error.
    pub const FAILURE: i32 = 1;
    /// The bundle failed to load, evaluate, honour the contract or warm up.
    pub const BUNDLE: i32 = 3;
    /// A render exhausted the JS heap. The job was answered; the process
    /// exited so that it can be replaced with a fresh one (EX_TEMPFAIL).
    pub const HEAP_LIMIT: i32 = 75;
}

/// Everything `ssrd worker` is configured with.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Address to bind; loopback unless the operator says otherwise.
    pub host: IpAddr,
    /// Port to bind; 0 picks a free one (reported in the ready line).
    pub port: u16,
    /// A listening socket inherited from the supervisor, instead of binding.
    /// The supervisor keeps its own copy open, so connections that arrive
    /// while this process is dead or restarting wait in the kernel's accept
    /// queue for the next worker instead of being refused.
    pub listen_fd: Option<i32>,
    /// Render thread settings (bundle, snapshot, limits, warm-up).
    pub renderer: RendererConfig,
    /// HTTP limits.
    pub http: http::HttpConfig,
    /// Extra V8 flags for this process, space-separated.
    pub v8_flags: String,
    /// Emit per-request events and heartbeats on stdout (for the supervisor).
    pub events: bool,
}

impl WorkerConfig {
    pub fn new(bundle: PathBuf, port: u16) -> Self {
        WorkerConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
            listen_fd: None,
            renderer: RendererConfig {
                bundle,
                snapshot: None,
                heap_limit_bytes: 256 << 20,
                semi_space_bytes: 16 << 20,
                render_timeout: Duration::from_millis(1000),
                warmup_rounds: 3,
            },
            http: http::HttpConfig::default(),
            v8_flags: String::new(),
            events: false,
        }
    }
}

/// Runs a worker until `shutdown` resolves or the isolate must be retired.
/// Prints one JSON line to stdout when ready. Returns the exit code.
pub fn run(config: WorkerConfig, shutdown: impl Future<Output = ()>) -> i32 {
    if let Err(e) = js_runtime::set_v8_flags(&config.v8_flags) {
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
    let events = if config.events {
        events::EventSink::stdout()
    } else {
        events::EventSink::disabled()
    };
    let (queue, boot, retire) = match renderer::start(config.renderer.clone(), events.clone()) {
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
        let ready = json!({
            "ready": true,
            "port": local,
            "pid": std::process::id(),
            "boot_ms": round3(boot.boot_ms),
            "warmup_ms": round3(boot.warmup_ms),
            "snapshot": boot.snapshot,
            "rss_bytes": http::rss_bytes(),
        });
        // The ready line goes through the event writer when events are on,
        // so it is never interleaved with (or overtaken by) an event.
        if events.enabled() {
            events.emit(ready.clone());
        } else {
            use std::io::Write;
            // A closed stdout must not take the worker down.
            let _ = writeln!(std::io::stdout().lock(), "{ready}");
        }
        log::info("worker ready", ready);
        let (retire_tx, retire_rx) = tokio::sync::oneshot::channel();
        let stop = async move {
            tokio::select! {
                _ = shutdown => {}
                reason = retire => {
                    if let Ok(reason) = reason {
                        log::warn("retiring: the JS heap is exhausted", json!({"reason": format!("{reason:?}")}));
                        let _ = retire_tx.send(());
                    }
                }
            }
        };
        http::serve(listener, queue, config.http, stop).await;
        if retire_rx.await.is_ok() {
            exit_code::HEAP_LIMIT
        } else {
            exit_code::OK
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
