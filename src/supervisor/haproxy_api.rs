//! haproxy's runtime API over its admin unix socket.
//!
//! One command per connection (haproxy's non-interactive mode: it answers
//! and closes), each bounded by a timeout. The supervisor uses it to set
//! workers READY / DRAIN / MAINT and to read per-server sessions and the
//! queue length.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::templates::BACKEND;

/// An administrative state of a server in the workers backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Takes traffic.
    Ready,
    /// Finishes what it has, takes nothing new.
    Drain,
    /// Out of rotation: nothing is sent to it, queued requests go elsewhere.
    Maint,
}

impl ServerState {
    fn word(self) -> &'static str {
        match self {
            ServerState::Ready => "ready",
            ServerState::Drain => "drain",
            ServerState::Maint => "maint",
        }
    }
}

/// One server's (or the backend's) live figures from `show stat`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerStat {
    /// "w1", … or "BACKEND" for the backend's own row.
    pub name: String,
    /// Requests waiting in the queue.
    pub qcur: u64,
    /// Sessions in progress.
    pub scur: u64,
    /// Most sessions ever in progress at once.
    pub smax: u64,
    /// "UP", "MAINT", "DRAIN", …
    pub status: String,
}

/// A client for one haproxy's runtime API.
#[derive(Debug, Clone)]
pub struct HaproxyApi {
    /// The `stats socket … level admin` path.
    socket: PathBuf,
    /// Bound on connecting, writing and reading one command.
    timeout: Duration,
}

impl HaproxyApi {
    pub fn new(socket: PathBuf) -> Self {
        HaproxyApi {
            socket,
            timeout: Duration::from_secs(2),
        }
    }

    /// Sends one command and returns haproxy's answer.
    pub async fn command(&self, cmd: &str) -> Result<String, String> {
        let exchange = async {
            let mut stream = UnixStream::connect(&self.socket).await?;
            stream.write_all(format!("{cmd}\n").as_bytes()).await?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(format!(
                "haproxy runtime API ({}): {e}",
                self.socket.display()
            )),
            Err(_) => Err(format!(
                "haproxy runtime API ({}): no answer within {:?}",
                self.socket.display(),
                self.timeout
            )),
        }
    }

    /// Sets a worker's state in the backend.
    pub async fn set_state(&self, server: &str, state: ServerState) -> Result<(), String> {
        let answer = self
            .command(&format!(
                "set server {BACKEND}/{server} state {}",
                state.word()
            ))
            .await?;
        // Success is an empty answer; anything else is haproxy's complaint.
        if answer.trim().is_empty() {
            Ok(())
        } else {
            Err(format!("set {server} {}: {}", state.word(), answer.trim()))
        }
    }

    /// Live figures for every server of the backend, and the backend itself.
    pub async fn stats(&self) -> Result<Vec<ServerStat>, String> {
        let csv = self.command("show stat").await?;
        Ok(parse_stat(&csv))
    }

    /// True once haproxy answers on its socket.
    pub async fn is_up(&self) -> bool {
        self.command("show info").await.is_ok()
    }
}

/// Parses `show stat` CSV, keeping the workers backend's rows.
pub fn parse_stat(csv: &str) -> Vec<ServerStat> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(qcur), Some(scur), Some(smax), Some(status)) = (
        col("pxname"),
        col("svname"),
        col("qcur"),
        col("scur"),
        col("smax"),
        col("status"),
    ) else {
        return Vec::new();
    };
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.get(px) == Some(&BACKEND))
        .map(|f| {
            let num = |i: usize| f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
            ServerStat {
                name: f.get(sv).unwrap_or(&"").to_string(),
                qcur: num(qcur),
                scur: num(scur),
                smax: num(smax),
                status: f.get(status).unwrap_or(&"").to_string(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_stat() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status\n\
                   ssrd,FRONTEND,,,3,9,8192,100,OPEN\n\
                   workers,w1,0,0,1,1,1,50,UP\n\
                   workers,w2,0,0,0,1,1,49,MAINT\n\
                   workers,BACKEND,4,7,1,2,,99,UP\n";
        let rows = parse_stat(csv);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].name, "w1");
        assert_eq!((rows[0].scur, rows[0].smax), (1, 1));
        assert_eq!(rows[1].status, "MAINT");
        assert_eq!((rows[2].name.as_str(), rows[2].qcur), ("BACKEND", 4));
    }
}
