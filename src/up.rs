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
use crate::error::{Result, UpError};
use crate::preflight;
use crate::supervisor::haproxy_api::HaproxyApi;
use crate::supervisor::metrics::{self, Metrics};
use crate::supervisor::{self, Supervisor};
use crate::templates;

/// Runs the tier in the foreground; returns the exit code.
pub fn up(config: Config) -> i32 {
    match start(config) {
        Ok(code) => code,
        Err(e) => e.report(),
    }
}

fn start(mut config: Config) -> Result<i32> {
    let exe = std::env::current_exe()
        .map_err(|e| UpError::setup(format!("cannot find the ssrd binary itself: {e}")))?;
    prepare(&mut config)?;
    let listeners = bind_workers(&config)?;
    check_bundle(&exe, &config)?;
    let pid_file = config.pid_file();
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))
        .map_err(|e| UpError::setup(format!("writing {}: {e}", pid_file.display())))?;
    let code = run(config, exe, listeners);
    let _ = std::fs::remove_file(&pid_file);
    code
}

/// Evaluates the bundle once, in a child process, before starting anything:
/// a broken bundle fails `up` at once, and with snapshots on every worker
/// then starts from the snapshot this writes.
fn check_bundle(exe: &Path, config: &Config) -> Result<()> {
    if !config.bundle.is_file() {
        return Err(UpError::bundle(format!(
            "bundle {} not found (build the example with: cd js-bundle && npm ci && npm run build)",
            config.bundle.display()
        )));
    }
    let out = if config.snapshot {
        config.snapshot_file()
    } else {
        config.run_dir.join("startup-check.snap")
    };
    let mut check = Command::new(exe);
    check
        .arg("snapshot")
        .arg("--bundle")
        .arg(&config.bundle)
        .arg("--out")
        .arg(&out);
    match preflight::run_with_timeout(&mut check, Duration::from_secs(120)) {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(UpError::bundle(format!(
            "bundle {} does not load: {}",
            config.bundle.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) => Err(UpError::bundle(format!("checking the bundle: {e}"))),
    }
}

fn run(config: Config, exe: PathBuf, listeners: Vec<std::net::TcpListener>) -> Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UpError::runtime(format!("starting the runtime: {e}")))?;
    runtime.block_on(async move {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // Signals first, so no SIGCHLD of an early-dying child is missed.
        supervisor::forward_signals(tx.clone())
            .map_err(|e| UpError::runtime(format!("installing signal handlers: {e}")))?;
        let metrics = Metrics::new();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.metrics_port))
            .await
            .map_err(|e| UpError::setup(format!("metrics port {}: {e}", config.metrics_port)))?;
        let api = HaproxyApi::new(config.haproxy_socket());
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
        Ok(Supervisor::new(config, exe, listeners, tx, metrics)
            .run(rx)
            .await)
    })
}

/// Resolves binaries, checks ports, writes and checks the configs.
fn prepare(config: &mut Config) -> Result<()> {
    config.nginx = preflight::find_binary(&config.nginx, "nginx", "--nginx")?;
    config.haproxy = preflight::find_binary(&config.haproxy, "haproxy", "--haproxy")?;
    config.bundle = absolute(&config.bundle);
    config.run_dir = absolute(&config.run_dir);
    preflight::ports_free(config)?;
    write_configs(config)?;
    check_configs(config)
}

/// Binds every worker port once, for the life of the tier (spawn.rs says why).
fn bind_workers(config: &Config) -> Result<Vec<std::net::TcpListener>> {
    (0..config.workers)
        .map(|i| {
            let port = config.worker_port(i);
            std::net::TcpListener::bind(("127.0.0.1", port))
                .map_err(|e| UpError::setup(format!("port {port} for worker {}: {e}", i + 1)))
        })
        .collect()
}

/// Renders both configs into the run dir.
pub fn write_configs(config: &Config) -> Result<()> {
    let rendered = templates::render(config)?;
    let run = &config.run_dir;
    std::fs::create_dir_all(run.join("nginx"))
        .map_err(|e| UpError::setup(format!("creating {}: {e}", run.display())))?;
    for (file, text) in [
        ("nginx.conf", &rendered.nginx),
        ("haproxy.cfg", &rendered.haproxy),
    ] {
        let path = run.join(file);
        std::fs::write(&path, text)
            .map_err(|e| UpError::setup(format!("writing {}: {e}", path.display())))?;
    }
    Ok(())
}

/// `nginx -t` and `haproxy -c` on the written configs.
pub fn check_configs(config: &Config) -> Result<()> {
    let mut nginx = Command::new(&config.nginx);
    nginx.arg("-t").args(supervisor::nginx_args(config));
    preflight::check_command("nginx -t", &mut nginx)?;
    let mut haproxy = Command::new(&config.haproxy);
    haproxy
        .arg("-c")
        .arg("-f")
        .arg(config.run_dir.join("haproxy.cfg"));
    preflight::check_command("haproxy -c", &mut haproxy)
}

/// `ssrd config`: print both configs, optionally checked.
pub fn print_config(mut config: Config, check: bool) -> Result<()> {
    config.run_dir = absolute(&config.run_dir);
    let rendered = templates::render(&config)?;
    println!("# ---- {}/nginx.conf ----", config.run_dir.display());
    println!("{}", rendered.nginx);
    println!("# ---- {}/haproxy.cfg ----", config.run_dir.display());
    println!("{}", rendered.haproxy);
    if check {
        config.nginx = preflight::find_binary(&config.nginx, "nginx", "--nginx")?;
        config.haproxy = preflight::find_binary(&config.haproxy, "haproxy", "--haproxy")?;
        write_configs(&config)?;
        check_configs(&config)?;
        eprintln!("nginx -t and haproxy -c accept both configs");
    }
    Ok(())
}

/// `ssrd reload`: SIGHUP to the supervisor named in the run dir's pid file.
pub fn reload(config: &Config) -> Result<()> {
    let pid_file = config.pid_file();
    let text = std::fs::read_to_string(&pid_file).map_err(|e| {
        UpError::setup(format!(
            "no running ssrd found ({}: {e}); pass the --run-dir it was started with",
            pid_file.display()
        ))
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| UpError::setup(format!("{} does not hold a pid", pid_file.display())))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .map_err(|e| {
        UpError::setup(format!(
            "signalling pid {pid}: {e} (stale {}?)",
            pid_file.display()
        ))
    })?;
    eprintln!("sent SIGHUP to ssrd (pid {pid}): workers will be replaced one at a time");
    Ok(())
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
