//! Every listening socket of the tier, bound once by the supervisor and
//! held for its whole life: nginx's public port, haproxy's frontend, and
//! each worker slot's port. Each process the supervisor starts gets its
//! socket as fd 3; because the supervisor's copy stays open, connections
//! that arrive while any of them restarts wait in the kernel's queue and are
//! served by the replacement: a restart costs latency, never a refusal.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsFd;

use nix::sys::socket::{listen, Backlog};

use crate::config::Config;
use crate::error::{Result, UpError};

/// How many connections may wait in each socket's queue.
const BACKLOG: i32 = 4096;

/// The tier's listening sockets.
pub struct Listeners {
    /// nginx: where callers connect (`host:port`).
    pub public: TcpListener,
    /// haproxy's frontend (loopback).
    pub haproxy: TcpListener,
    /// One per worker slot (loopback).
    pub workers: Vec<TcpListener>,
}

impl Listeners {
    /// Binds them all, or says which port is taken.
    pub fn bind(config: &Config) -> Result<Listeners> {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Ok(Listeners {
            public: bind(SocketAddr::new(config.host, config.port), "nginx (--port)")?,
            haproxy: bind(
                SocketAddr::new(loopback, config.haproxy_port),
                "haproxy (--haproxy-port)",
            )?,
            workers: (0..config.workers)
                .map(|i| {
                    bind(
                        SocketAddr::new(loopback, config.worker_port(i)),
                        &format!("worker {} (--worker-base-port)", i + 1),
                    )
                })
                .collect::<Result<_>>()?,
        })
    }
}

fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    let taken = |e: std::io::Error| {
        UpError::setup(format!(
            "port {} for {what} is not available on {}: {e}; free it or choose another port",
            addr.port(),
            addr.ip()
        ))
    };
    let listener = TcpListener::bind(addr).map_err(taken)?;
    // std listens with a short queue; connections wait here during restarts.
    let backlog = Backlog::new(BACKLOG).unwrap_or(Backlog::MAXCONN);
    listen(&listener.as_fd(), backlog).map_err(|e| taken(e.into()))?;
    Ok(listener)
}
