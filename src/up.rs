//! `ssrd up`, `ssrd config` and `ssrd reload`: from a resolved config to a
//! running tier.
//!
//! `up` does every check that can fail before starting anything (binaries
//! installed, ports free, generated configs accepted by `nginx -t` and
//! `haproxy -c`, the bundle loads and honours the contract), so that a bad
//! setup fails at once with a message saying what to change, never half-way.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use ssrd_worker::log;

use crate::config::Config;
use crate::metrics::{self, Metrics};
use crate::preflight;
use crate::supervisor::Supervisor;
use crate::templates;

/// Runs the tier in the foreground; returns the exit code.
pub fn up(mut config: Config) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return fail(1, format!("cannot find the ssrd binary itself: {e}")),
    };
    if let Err(e) = prepare(&mut config) {
        return fail(1, e);
    }
    let listeners = match bind_workers(&config) {
        Ok(l) => l,
        Err(e) => return fail(1, e),
    };
    if !config.bundle.is_file() {
        return fail(
            3,
            format!(
                "bundle {} not found (build the example with: cd js-bundle && npm ci && npm run build)",
                config.bundle.display()
            ),
        );
    }
    // Evaluate the bundle once, in a child process, before starting anything:
    // a broken bundle fails `up` at once, and with snapshots on every worker
    // then starts from the snapshot this writes.
    let out = if config.snapshot {
        config.snapshot_file()
    } else {
        config.run_dir.join("startup-check.snap")
    };
    let mut check = Command::new(&exe);
    check
        .arg("snapshot")
        .arg("--bundle")
        .arg(&config.bundle)
        .arg("--out")
        .arg(&out);
    match preflight::run_with_timeout(&mut check, Duration::from_secs(120)) {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return fail(
                3,
                format!(
                    "bundle {} does not load: {}",
                    config.bundle.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            )
        }
        Err(e) => return fail(3, format!("checking the bundle: {e}")),
    }
    let pid_file = config.pid_file();
    if let Err(e) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        return fail(1, format!("writing {}: {e}", pid_file.display()));
    }
    let code = run(config, exe, listeners);
    let _ = std::fs::remove_file(&pid_file);
    code
}

fn run(config: Config, exe: PathBuf, listeners: Vec<std::net::TcpListener>) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("starting the runtime: {e}")),
    };
    runtime.block_on(async move {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // Signals first, so no SIGCHLD of an early-dying child is missed.
        if let Err(e) = crate::signals::forward(tx.clone()) {
            return fail(1, format!("installing signal handlers: {e}"));
        }
        let metrics = Metrics::new();
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", config.metrics_port)).await
        {
            Ok(l) => l,
            Err(e) => return fail(1, format!("metrics port {}: {e}", config.metrics_port)),
        };
        let api = crate::haproxy_api::HaproxyApi::new(config.haproxy_socket());
        tokio::spawn(metrics::serve(
            listener,
            metrics.clone(),
            api,
            std::future::pending(),
        ));
        log::info(
            "starting the tier",
            json!({"workers": config.workers, "bundle": config.bundle, "run_dir": config.run_dir}),
        );
        Supervisor::new(config, exe, listeners, tx, metrics)
            .run(rx)
            .await
    })
}

/// Resolves binaries, checks ports, writes and checks the configs.
fn prepare(config: &mut Config) -> Result<(), String> {
    config.nginx = preflight::find_binary(&config.nginx, "nginx", "--nginx")?;
    config.haproxy = preflight::find_binary(&config.haproxy, "haproxy", "--haproxy")?;
    config.bundle = absolute(&config.bundle);
    config.run_dir = absolute(&config.run_dir);
    preflight::ports_free(config)?;
    write_configs(config)?;
    check_configs(config)
}

/// Binds every worker port once, for the life of the tier (spawn.rs says why).
fn bind_workers(config: &Config) -> Result<Vec<std::net::TcpListener>, String> {
    (0..config.workers)
        .map(|i| {
            let port = config.worker_port(i);
            std::net::TcpListener::bind(("127.0.0.1", port))
                .map_err(|e| format!("port {port} for worker {}: {e}", i + 1))
        })
        .collect()
}

/// Renders both configs into the run dir.
pub fn write_configs(config: &Config) -> Result<(), String> {
    let rendered = templates::render(config)?;
    let run = &config.run_dir;
    std::fs::create_dir_all(run.join("nginx"))
        .map_err(|e| format!("creating {}: {e}", run.display()))?;
    for (file, text) in [
        ("nginx.conf", &rendered.nginx),
        ("haproxy.cfg", &rendered.haproxy),
    ] {
        let path = run.join(file);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// `nginx -t` and `haproxy -c` on the written configs.
pub fn check_configs(config: &Config) -> Result<(), String> {
    let mut nginx = Command::new(&config.nginx);
    nginx.arg("-t").args(crate::spawn::nginx_args(config));
    preflight::check_command("nginx -t", &mut nginx)?;
    let mut haproxy = Command::new(&config.haproxy);
    haproxy
        .arg("-c")
        .arg("-f")
        .arg(config.run_dir.join("haproxy.cfg"));
    preflight::check_command("haproxy -c", &mut haproxy)
}

/// `ssrd config`: print both configs, optionally checked.
pub fn print_config(mut config: Config, check: bool) -> i32 {
    config.run_dir = absolute(&config.run_dir);
    let rendered = match templates::render(&config) {
        Ok(r) => r,
        Err(e) => return fail(1, e),
    };
    println!("# ---- {}/nginx.conf ----", config.run_dir.display());
    println!("{}", rendered.nginx);
    println!("# ---- {}/haproxy.cfg ----", config.run_dir.display());
    println!("{}", rendered.haproxy);
    if check {
        let result = preflight::find_binary(&config.nginx, "nginx", "--nginx")
            .and_then(|p| {
                config.nginx = p;
                preflight::find_binary(&config.haproxy, "haproxy", "--haproxy")
            })
            .and_then(|p| {
                config.haproxy = p;
                write_configs(&config)
            })
            .and_then(|()| check_configs(&config));
        if let Err(e) = result {
            return fail(1, e);
        }
        eprintln!("nginx -t and haproxy -c accept both configs");
    }
    0
}

/// `ssrd reload`: SIGHUP to the supervisor named in the run dir's pid file.
pub fn reload(config: &Config) -> i32 {
    let pid_file = config.pid_file();
    let pid = match std::fs::read_to_string(&pid_file) {
        Ok(text) => match text.trim().parse::<i32>() {
            Ok(pid) => pid,
            Err(_) => return fail(1, format!("{} does not hold a pid", pid_file.display())),
        },
        Err(e) => {
            return fail(
                1,
                format!(
                    "no running ssrd found ({}: {e}); pass the --run-dir it was started with",
                    pid_file.display()
                ),
            )
        }
    };
    match nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    ) {
        Ok(()) => {
            eprintln!("sent SIGHUP to ssrd (pid {pid}): workers will be replaced one at a time");
            0
        }
        Err(e) => fail(
            1,
            format!("signalling pid {pid}: {e} (stale {}?)", pid_file.display()),
        ),
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn fail(code: i32, message: String) -> i32 {
    eprintln!("ssrd: {message}");
    code
}
