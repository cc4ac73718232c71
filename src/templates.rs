//! Renders the nginx and haproxy configs from the templates in `nginx/` and
//! `haproxy/` (compiled into the binary, so `ssrd` is self-contained).
//!
//! Templates use `{{name}}` placeholders. A placeholder without a value, or
//! a value without a placeholder, is an error: a typo never ships silently.

use crate::config::{AccessLog, Config};
use crate::error::{Result, UpError};

const NGINX: &str = include_str!("../nginx/nginx.conf.tmpl");

/// Where nginx sends hang-ups: the port and the secret its lines start with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HangupTarget {
    /// The supervisor's UDP port on 127.0.0.1.
    pub port: u16,
    /// Random hex; a datagram without it is ignored.
    pub secret: String,
}

/// The most of one request body nginx holds in memory, KiB (a large batch
/// of the bench, 430 KiB, fits; docs/operations.md, "Bounds").
pub const BODY_BUFFER_KB: u64 = 512;
const HAPROXY: &str = include_str!("../haproxy/haproxy.cfg.tmpl");

/// The nginx config, for an open-file limit of `nofile`, reporting callers
/// that hang up to `hangup`.
pub fn nginx(config: &Config, nofile: u64, hangup: &HangupTarget) -> Result<String> {
    let run_dir = config.run_dir.display().to_string();
    let ms = |n: u64| format!("{n}ms");
    let access_log = match &config.access_log {
        // nginx's stderr is a pipe the supervisor reads and copies to its
        // own (supervisor/nginx_log.rs): a journald socket or a terminal
        // could not be opened by path.
        AccessLog::Stderr => "access_log /dev/stderr ssrd buffer=16k flush=1s;".to_string(),
        AccessLog::File(path) => {
            format!("access_log {} ssrd buffer=64k flush=1s;", path.display())
        }
        AccessLog::Off => "# No access log (access_log = \"off\").".to_string(),
    };
    let body = format!("{}m", config.max_body_mb);
    // What of a body nginx keeps in memory while it arrives (the rest goes
    // to a file): a caller that sends slowly holds at most this much.
    let body_buffer = format!("{}k", (config.max_body_mb * 1024).min(BODY_BUFFER_KB));
    fill(
        "nginx",
        NGINX,
        &[
            ("run_dir", run_dir),
            ("user", worker_user()),
            ("host", config.host.to_string()),
            ("port", config.port.to_string()),
            ("haproxy_port", config.haproxy_port.to_string()),
            ("nofile", nofile.to_string()),
            ("connections", connections(nofile).to_string()),
            ("max_body", body),
            ("body_buffer", body_buffer),
            (
                "body_temp_dir",
                config.body_temp_dir().display().to_string(),
            ),
            ("client_timeout", ms(config.client_timeout_ms)),
            ("upstream_timeout", ms(config.upstream_timeout_ms)),
            ("health_addr", config.health_addr().to_string()),
            ("access_log", access_log),
            ("hangup_port", hangup.port.to_string()),
            ("hangup_secret", hangup.secret.clone()),
        ],
    )
}

/// nginx's `user` line. Started as root, nginx would run its workers as
/// `nobody`, who cannot reach the private run dir, where bodies past the
/// memory buffer are written: so they run as root too. (Run the tier as
/// its own user in production, as the systemd unit and the image do; then
/// nginx's workers are that user and this line is a comment.)
fn worker_user() -> String {
    if nix::unistd::geteuid().is_root() {
        "user root root;".to_string()
    } else {
        "# (workers run as the user that started ssrd)".to_string()
    }
}

/// The haproxy config. `in_rotation[i]`: worker slot i is READY from the
/// start (a restarted haproxy); otherwise, or when absent, MAINT.
pub fn haproxy(config: &Config, in_rotation: &[bool]) -> Result<String> {
    let ms = |n: u64| format!("{n}ms");
    let servers: Vec<String> = (0..config.workers)
        .map(|i| {
            let disabled = if in_rotation.get(i) == Some(&true) {
                ""
            } else {
                " disabled"
            };
            format!(
                "    server {} 127.0.0.1:{} maxconn 1{disabled}",
                server_name(i),
                config.worker_port(i)
            )
        })
        .collect();
    fill(
        "haproxy",
        HAPROXY,
        &[
            ("haproxy_port", config.haproxy_port.to_string()),
            ("stats_port", config.stats_port.to_string()),
            ("balance", config.balance.haproxy_name().to_string()),
            ("queue_timeout", ms(config.queue_timeout_ms)),
            ("upstream_timeout", ms(config.upstream_timeout_ms)),
            ("servers", servers.join("\n")),
        ],
    )
}

/// nginx's connections per worker process for an open-file limit: every
/// descriptor but a few for logs and listeners, within nginx's sane range.
pub fn connections(nofile: u64) -> u64 {
    nofile.saturating_sub(64).clamp(1024, 1 << 20)
}

/// haproxy's name for worker slot `i` (0-based): w1, w2, …
pub fn server_name(i: usize) -> String {
    format!("w{}", i + 1)
}

/// The haproxy backend holding the workers.
pub const BACKEND: &str = "workers";
/// The haproxy backend that refuses requests when no worker is in rotation.
pub const NO_WORKER: &str = "no_worker";

fn fill(what: &str, template: &str, vars: &[(&str, String)]) -> Result<String> {
    let mut out = template.to_string();
    for (name, value) in vars {
        let placeholder = format!("{{{{{name}}}}}");
        if !out.contains(&placeholder) {
            return Err(UpError::runtime(format!(
                "{what} template has no {placeholder}"
            )));
        }
        out = out.replace(&placeholder, value);
    }
    if let Some(at) = out.find("{{") {
        let rest = &out[at..];
        let end = rest.find("}}").map(|e| e + 2).unwrap_or(rest.len().min(40));
        return Err(UpError::runtime(format!(
            "{what} template: no value for {}",
            &rest[..end]
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        let c = Config {
            workers: 3,
            ..Config::default()
        };
        let hangup = HangupTarget {
            port: 9,
            secret: "s".into(),
        };
        let n = nginx(&c, 20_000, &hangup).unwrap();
        let h = haproxy(&c, &[true]).unwrap();
        assert!(!n.contains("{{") && !h.contains("{{"));
        assert!(h.contains("server w1 127.0.0.1:9002 maxconn 1\n"));
        assert!(h.contains("server w3 127.0.0.1:9004 maxconn 1 disabled"));
        assert!(n.contains("worker_connections 19936;"));
        assert!(h.contains("balance first"));
        assert!(n.contains("client_max_body_size 5m;"));
        assert!(n.contains("listen 127.0.0.1:9000"));
    }

    #[test]
    fn typos_are_errors() {
        assert!(fill("t", "a {{x}} b", &[])
            .unwrap_err()
            .context
            .contains("{{x}}"));
        assert!(fill("t", "a b", &[("x", "1".into())])
            .unwrap_err()
            .context
            .contains("no {{x}}"));
    }
}
