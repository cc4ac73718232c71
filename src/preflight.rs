//! Checks before `ssrd up` starts anything, each failing with a message that
//! says exactly what to install or change.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Result, UpError};

/// Finds `program` (a path, or a name looked up on PATH).
pub fn find_binary(program: &Path, package: &str, flag: &str) -> Result<PathBuf> {
    let found = if program.components().count() > 1 {
        program.is_file().then(|| program.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        })
    };
    found.ok_or_else(|| {
        UpError::setup(format!(
            "{} not found: install it (Debian/Ubuntu: `apt-get install -y {package}`) or pass {flag} PATH",
            program.display()
        ))
    })
}

/// The ports other processes bind (haproxy's stats page, the supervisor's
/// metrics) must be free now; the tier's own listening sockets are bound
/// by the supervisor itself (listeners.rs).
pub fn ports_free(config: &Config) -> Result<()> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    for (ip, port, what) in [
        (loopback, config.stats_port, "haproxy stats (--stats-port)"),
        (
            config.metrics_host,
            config.metrics_port,
            "metrics (--metrics-host, --metrics-port)",
        ),
    ] {
        if let Err(e) = TcpListener::bind(SocketAddr::new(ip, port)) {
            return Err(UpError::setup(format!(
                "port {port} for {what} is not available on {ip}: {e}; free it or choose another port"
            )));
        }
    }
    Ok(())
}

/// Runs a config check command (`nginx -t`, `haproxy -c`) with a timeout.
pub fn check_command(what: &str, cmd: &mut Command) -> Result<()> {
    let out = run_with_timeout(cmd, Duration::from_secs(30))
        .map_err(|e| UpError::setup(format!("running {what}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(UpError::setup(format!(
            "{what} rejected the generated config:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// `Command::output` with a deadline: the child is killed when it passes.
/// Output is read on threads so a chatty child never blocks on a full pipe.
pub fn run_with_timeout(
    cmd: &mut Command,
    timeout: Duration,
) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("did not finish within {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}
