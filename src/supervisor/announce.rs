//! The tier's ready line: once every worker is in rotation, one JSON line on
//! stdout (for scripts and tests) saying where each part listens, then the
//! same for humans.

use serde_json::json;
use ssrd_worker::log::{self, LogEvent};

use crate::config::Config;

/// Prints a line on stdout, ignoring a closed stdout (`ssrd up | head -1`
/// must not take the tier down).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub fn announce(c: &Config) {
    let base = format!("http://{}:{}", c.host, c.port);
    let ports: Vec<u16> = (0..c.workers).map(|i| c.worker_port(i)).collect();
    let pid = std::process::id();
    let line = json!({
        "ready": true,
        "pid": pid,
        "batch": format!("{base}/batch"),
        "ping": format!("{base}/ping"),
        "health": format!("{base}/health"),
        "haproxy": format!("http://127.0.0.1:{}", c.haproxy_port),
        "stats": format!("http://127.0.0.1:{}/", c.stats_port),
        "metrics": format!("http://127.0.0.1:{}/metrics", c.metrics_port),
        "workers": ports,
        "run_dir": c.run_dir,
    });
    say!("{line}");
    say!(
        "ssrd is up with {} workers (bundle {})",
        c.workers,
        c.bundle.display()
    );
    say!("  render   POST {base}/batch  ·  POST {base}/render/{{name}}   (nginx)");
    say!("  ping     {base}/ping   health {base}/health");
    say!(
        "  haproxy  127.0.0.1:{}   stats http://127.0.0.1:{}/",
        c.haproxy_port,
        c.stats_port
    );
    say!(
        "  workers  127.0.0.1:{}..{}",
        ports[0],
        ports[ports.len() - 1]
    );
    say!("  metrics  http://127.0.0.1:{}/metrics", c.metrics_port);
    say!(
        "  reload   kill -HUP {pid}  (or: ssrd reload --run-dir {})",
        c.run_dir.display()
    );
    say!("  stop     Ctrl-C or kill -TERM {pid}");
    log::emit(LogEvent::TierReady, "tier ready", line);
}
