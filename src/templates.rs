//! Renders the nginx and haproxy configs from the templates in `nginx/` and
//! `haproxy/` (compiled into the binary, so `ssrd` is self-contained).
//!
//! Templates use `{{name}}` placeholders. A placeholder without a value, or
//! a value without a placeholder, is an error: a typo never ships silently.

use crate::config::Config;
use crate::error::{Result, UpError};

const NGINX: &str = include_str!("../nginx/nginx.conf.tmpl");
const HAPROXY: &str = include_str!("../haproxy/haproxy.cfg.tmpl");

/// The two rendered config files.
pub struct Rendered {
    pub nginx: String,
    pub haproxy: String,
}

pub fn render(config: &Config) -> Result<Rendered> {
    let run_dir = config.run_dir.display().to_string();
    let ms = |n: u64| format!("{n}ms");
    let access_log = if config.access_log {
        format!("{run_dir}/nginx-access.log ssrd buffer=64k flush=1s")
    } else {
        "off".to_string()
    };
    let body = format!("{}m", config.max_body_mb);
    let nginx = fill(
        "nginx",
        NGINX,
        &[
            ("run_dir", run_dir.clone()),
            ("host", config.host.to_string()),
            ("port", config.port.to_string()),
            ("haproxy_port", config.haproxy_port.to_string()),
            ("max_body", body.clone()),
            ("body_buffer", body),
            ("client_timeout", ms(config.client_timeout_ms)),
            ("upstream_timeout", ms(config.upstream_timeout_ms)),
            ("access_log", access_log),
        ],
    )?;
    let servers: Vec<String> = (0..config.workers)
        .map(|i| {
            format!(
                "    server {} 127.0.0.1:{} maxconn 1 disabled",
                server_name(i),
                config.worker_port(i)
            )
        })
        .collect();
    let haproxy = fill(
        "haproxy",
        HAPROXY,
        &[
            ("run_dir", run_dir),
            ("haproxy_port", config.haproxy_port.to_string()),
            ("stats_port", config.stats_port.to_string()),
            ("balance", config.balance.haproxy_name().to_string()),
            ("queue_timeout", ms(config.queue_timeout_ms)),
            ("upstream_timeout", ms(config.upstream_timeout_ms)),
            ("servers", servers.join("\n")),
        ],
    )?;
    Ok(Rendered { nginx, haproxy })
}

/// haproxy's name for worker slot `i` (0-based): w1, w2, …
pub fn server_name(i: usize) -> String {
    format!("w{}", i + 1)
}

/// The haproxy backend holding the workers.
pub const BACKEND: &str = "workers";

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
        let r = render(&c).unwrap();
        assert!(!r.nginx.contains("{{") && !r.haproxy.contains("{{"));
        assert!(r
            .haproxy
            .contains("server w3 127.0.0.1:9004 maxconn 1 disabled"));
        assert!(r.haproxy.contains("balance first"));
        assert!(r.nginx.contains("client_max_body_size 5m;"));
        assert!(r.nginx.contains("listen 127.0.0.1:9000"));
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
