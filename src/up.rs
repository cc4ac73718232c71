//! `ssrd up`, `ssrd config` and `ssrd reload`: from a resolved config to a
//! running tier.
//!
//! `up` does every check that can fail before starting anything (binaries
//! installed, a safe run dir no other tier uses, ports free, generated
//! configs accepted by `nginx -t` and `haproxy -c`, the bundle loads and
//! honours the contract), so that a bad setup fails at once with a message
//! saying what to change, never half-way. The one exception is the last
//! half of the bundle check, its warm-up render (bundle_check.rs): it runs
//! while the tier starts, and a failure stops the tier with its message.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use ssrd_worker::log::{self, LogEvent};

use crate::bundle_store::BundleStore;
use crate::config::Config;
use crate::error::{Result, UpError};
use crate::leftovers::{self, RunLock};
use crate::supervisor::hangups::HangupFeed;
use crate::supervisor::haproxy_api::HaproxyApi;
use crate::supervisor::health::Health;
use crate::supervisor::listeners::Listeners;
use crate::supervisor::metrics::{self, Metrics};
use crate::supervisor::{self, Supervisor};
use crate::{bundle_check, configs, preflight, rundir, templates};

/// Runs the tier in the foreground; returns the exit code.
pub fn up(config: Config) -> i32 {
    match start(config) {
        Ok(code) => code,
        Err(e) => e.report(),
    }
}

fn start(mut config: Config) -> Result<i32> {
    // Every worker would refuse a flag V8 does not know, one after another,
    // in a crash loop: refuse it here, before anything starts. This process
    // never starts V8, so the flags set here change nothing else.
    ssrd_worker::bundle::set_v8_flags(&config.v8_flags)
        .map_err(|e| UpError::config(format!("--v8-flags {:?}: {}", config.v8_flags, e.context)))?;
    let exe = std::env::current_exe()
        .map_err(|e| UpError::setup(format!("cannot find the ssrd binary itself: {e}")))?;
    config.nginx = preflight::find_binary(&config.nginx, "nginx", "--nginx")?;
    config.haproxy = preflight::find_binary(&config.haproxy, "haproxy", "--haproxy")?;
    config.bundle = absolute(&config.bundle);
    config.run_dir = absolute(&config.run_dir);
    rundir::prepare(&config.run_dir)?;
    let lock = leftovers::lock(&config.run_dir)?;
    leftovers::clear(&config.run_dir);
    preflight::ports_free(&config)?;
    let listeners = Listeners::bind(&config)?;
    let hangups = HangupFeed::bind()?;
    let nofile = configs::raise_nofile();
    configs::write_configs(&config, nofile, &hangups.target, &[])?;
    let mut store = BundleStore::new(&config.run_dir);
    if !config.bundle.is_file() {
        return Err(UpError::bundle(format!(
            "bundle {} not found (build the example with: cd js-bundle && npm ci && npm run build)",
            config.bundle.display()
        )));
    }
    let stored = store.stage(&config.bundle)?;
    // The three checks are independent child processes: run side by side,
    // they cost the slowest one (the bundle's) instead of their sum. The
    // configs' verdict is reported first, as when they ran in turn. The
    // bundle's is started from this thread, whose end (that is, `up`'s)
    // kills it; a check dropped on an error is killed too.
    let mut bundle_check = bundle_check::start(&exe, &stored)?;
    let (configs, written) = std::thread::scope(|s| {
        let configs = s.spawn(|| check_configs(&config));
        let written = bundle_check.written();
        let configs = configs
            .join()
            .unwrap_or_else(|_| Err(UpError::setup("the config checks panicked")));
        (configs, written)
    });
    configs?;
    written?;
    store.promote(stored);
    rundir::write_file(
        &config.run_dir,
        "ssrd.pid",
        format!("{}\n", std::process::id()).as_bytes(),
    )
    .map_err(|e| UpError::setup(format!("writing {}: {e}", config.pid_file().display())))?;
    rundir::write_stop_plan(&config.run_dir, config.stop_plan())
        .map_err(|e| UpError::setup(format!("writing {}: {e}", rundir::STOP_PLAN)))?;
    let pid_file = config.pid_file();
    let stop_plan_file = config.run_dir.join(rundir::STOP_PLAN);
    let code = run(config, exe, listeners, hangups, store, lock, bundle_check);
    let _ = std::fs::remove_file(pid_file);
    let _ = std::fs::remove_file(stop_plan_file);
    code
}

fn run(
    config: Config,
    exe: PathBuf,
    listeners: Listeners,
    hangups: HangupFeed,
    store: BundleStore,
    lock: RunLock,
    bundle_check: bundle_check::Pending,
) -> Result<i32> {
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
        let health = Arc::new(Health::default());
        let listener = tokio::net::TcpListener::bind((config.metrics_host, config.metrics_port))
            .await
            .map_err(|e| {
                UpError::setup(format!(
                    "metrics address {}:{}: {e}",
                    config.metrics_host, config.metrics_port
                ))
            })?;
        let hangup = hangups.target.clone();
        hangups.forward(tx.clone())?;
        let api = HaproxyApi::new();
        tokio::spawn(metrics::serve(
            listener,
            metrics.clone(),
            health.clone(),
            api.clone(),
            std::future::pending(),
        ));
        log::emit(
            LogEvent::TierStarting,
            "starting the tier",
            json!({"workers": config.workers, "bundle": config.bundle, "run_dir": config.run_dir}),
        );
        let watch = if config.dev {
            Some(supervisor::watch_bundle(&config.bundle, tx.clone())?)
        } else {
            None
        };
        let parts = supervisor::Parts {
            exe,
            listeners,
            store,
            lock,
            api,
            tx,
            metrics,
            health,
            hangup,
            nginx_log: supervisor::nginx_log::NginxLog::start()
                .map_err(|e| UpError::runtime(format!("creating nginx's log pipe: {e}")))?,
            watch,
            bundle_check: Some(bundle_check),
        };
        Ok(Supervisor::new(config, parts).run(rx).await)
    })
}

/// `nginx -t` and `haproxy -c` on the written configs, side by side;
/// nginx's verdict is reported first. haproxy checks that
/// its inherited descriptors are what the config says (a listening socket
/// at fd 3, a socket pair at fd 4), so the check gets stand-ins.
pub fn check_configs(config: &Config) -> Result<()> {
    std::thread::scope(|s| {
        let nginx = s.spawn(|| {
            let mut nginx = Command::new(&config.nginx);
            nginx.arg("-t").args(supervisor::nginx_args(config));
            preflight::check_command("nginx -t", &mut nginx)
        });
        let haproxy = check_haproxy(config);
        nginx
            .join()
            .unwrap_or_else(|_| Err(UpError::setup("the nginx -t check panicked")))?;
        haproxy
    })
}

/// `haproxy -c` on the written config.
fn check_haproxy(config: &Config) -> Result<()> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| UpError::setup(format!("binding a port for haproxy -c: {e}")))?;
    let (_ours, theirs) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| UpError::setup(format!("a socket pair for haproxy -c: {e}")))?;
    let fds = [(listener.as_raw_fd(), 3), (theirs.as_raw_fd(), 4)];
    let mut haproxy = Command::new(&config.haproxy);
    haproxy
        .arg("-c")
        .arg("-f")
        .arg(config.run_dir.join("haproxy.cfg"));
    // SAFETY: pass_fds only makes async-signal-safe calls (fcntl, dup2) on
    // descriptors we own.
    unsafe {
        haproxy.pre_exec(move || supervisor::pass_fds(&fds));
    }
    preflight::check_command("haproxy -c", &mut haproxy)
}

/// `ssrd config`: print both configs, optionally checked.
pub fn print_config(mut config: Config, check: bool) -> Result<()> {
    config.run_dir = absolute(&config.run_dir);
    let nofile = configs::current_nofile();
    // A real port (nginx -t checks it), bound only while printing.
    let hangups = HangupFeed::bind()?;
    let nginx = templates::nginx(&config, nofile, &hangups.target)?;
    let haproxy = templates::haproxy(&config, &[])?;
    println!("# ---- {}/nginx.conf ----", config.run_dir.display());
    println!("{nginx}");
    println!("# ---- {}/haproxy.cfg ----", config.run_dir.display());
    println!("{haproxy}");
    if check {
        config.nginx = preflight::find_binary(&config.nginx, "nginx", "--nginx")?;
        config.haproxy = preflight::find_binary(&config.haproxy, "haproxy", "--haproxy")?;
        rundir::prepare(&config.run_dir)?;
        configs::write_configs(&config, nofile, &hangups.target, &[])?;
        check_configs(&config)?;
        eprintln!("nginx -t and haproxy -c accept both configs");
    }
    Ok(())
}

/// `ssrd reload`: SIGHUP to the supervisor named in the run dir's pid file.
pub fn reload(config: &Config) -> Result<()> {
    let pid = running_pid(config)?;
    signal_tier(config, pid, nix::sys::signal::Signal::SIGHUP)?;
    eprintln!("sent SIGHUP to ssrd (pid {pid}): workers will be replaced one at a time");
    Ok(())
}

/// `ssrd reopen-logs`: SIGUSR1 to the running tier's nginx, which reopens
/// its log files (after logrotate moved them away).
pub fn reopen_logs(config: &Config) -> Result<()> {
    running_pid(config)?;
    let nginx_pid = config.run_dir.join("nginx.pid");
    let pid: i32 = std::fs::read_to_string(&nginx_pid)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| UpError::setup(format!("no nginx pid in {}", nginx_pid.display())))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .map_err(|e| UpError::setup(format!("signalling nginx (pid {pid}): {e}")))?;
    eprintln!("nginx (pid {pid}) reopens its log files");
    Ok(())
}

/// `ssrd stop`: SIGTERM (drain, then a graceful stop) and wait until the
/// supervisor is gone, at most the drain plus the shutdown timeout plus a
/// margin for the phases after it.
pub fn stop(config: &Config) -> Result<()> {
    let pid = running_pid(config)?;
    // The running tier's own drain and shutdown timeout, not this
    // command's options.
    let plan = rundir::read_stop_plan(&config.run_dir).unwrap_or_else(|| config.stop_plan());
    signal_tier(config, pid, nix::sys::signal::Signal::SIGTERM)?;
    let within = Duration::from_secs(plan.drain_seconds)
        + Duration::from_millis(plan.shutdown_timeout_ms)
        + Duration::from_secs(20);
    let draining = match plan.drain_seconds {
        0 => "stopping at once (no drain)".to_string(),
        s => format!("draining for {s} s, then stopping"),
    };
    eprintln!(
        "sent SIGTERM to ssrd (pid {pid}): {draining}; waiting up to {} s",
        within.as_secs()
    );
    let deadline = std::time::Instant::now() + within;
    while alive(pid) {
        if std::time::Instant::now() > deadline {
            return Err(UpError::setup(format!(
                "ssrd (pid {pid}) is still running after {} s; `kill -9 {pid}` stops it and everything it started",
                within.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("ssrd (pid {pid}) stopped");
    Ok(())
}

/// Whether `pid` still runs: it exists and is not a zombie (exited, its
/// parent not having collected it yet).
fn alive(pid: i32) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// The pid in the run dir's pid file.
fn running_pid(config: &Config) -> Result<i32> {
    let pid_file = config.pid_file();
    let text = std::fs::read_to_string(&pid_file).map_err(|e| {
        UpError::setup(format!(
            "no running ssrd found ({}: {e}); pass the --run-dir it was started with",
            pid_file.display()
        ))
    })?;
    text.trim()
        .parse()
        .map_err(|_| UpError::setup(format!("{} does not hold a pid", pid_file.display())))
}

fn signal_tier(config: &Config, pid: i32, signal: nix::sys::signal::Signal) -> Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).map_err(|e| {
        UpError::setup(format!(
            "signalling pid {pid}: {e} (stale {}?)",
            config.pid_file().display()
        ))
    })
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
