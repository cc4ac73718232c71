//! haproxy's runtime API, over a socket pair instead of a file.
//!
//! The supervisor starts each haproxy with one end of a unix socket pair as
//! fd 4 (`stats socket sockpair@4 level admin`) and keeps the other end. To
//! send a command it makes a fresh pair, passes one end to haproxy over
//! that channel (SCM_RIGHTS), and talks on the other: haproxy treats it as
//! a new connection. Nothing lives in the filesystem, so no other user can
//! reach the admin API, and deleting the run dir cannot cut the supervisor
//! off from haproxy.
//!
//! One command per connection (haproxy's non-interactive mode: it answers
//! and closes), each bounded by a timeout. The supervisor uses it to set
//! workers READY / DRAIN / MAINT and to read per-server sessions and the
//! queue length.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::error::{Result, UpError};
use crate::templates::{BACKEND, NO_WORKER};

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
    /// Sessions so far (since haproxy started).
    pub stot: u64,
    /// Connection errors so far: for the workers backend, requests whose
    /// queue wait ran out (and connects that failed).
    pub econ: u64,
    /// Which proxy the row is of: "workers" or "no_worker".
    pub proxy: String,
    /// "UP", "MAINT", "DRAIN", …
    pub status: String,
}

/// A client for the running haproxy's runtime API. Cheap to clone; every
/// clone follows the channel of the haproxy started last.
#[derive(Debug, Clone)]
pub struct HaproxyApi {
    /// The supervisor's end of the channel to the current haproxy.
    channel: Arc<Mutex<Option<StdUnixStream>>>,
    /// Bound on connecting, writing and reading one command.
    timeout: Duration,
}

impl HaproxyApi {
    pub fn new() -> Self {
        HaproxyApi {
            channel: Arc::default(),
            timeout: Duration::from_secs(2),
        }
    }

    /// A new channel for a haproxy about to start: returns its end, to hand
    /// over as fd 4; commands go to that haproxy from now on.
    pub fn new_channel(&self) -> std::io::Result<OwnedFd> {
        let (ours, theirs) = StdUnixStream::pair()?;
        ours.set_nonblocking(true)?;
        *self.channel.lock().unwrap_or_else(|p| p.into_inner()) = Some(ours);
        Ok(theirs.into())
    }

    /// Opens a connection to haproxy: a fresh socket pair, one end passed
    /// over the channel.
    fn connect(&self) -> std::io::Result<StdUnixStream> {
        let (ours, theirs) = StdUnixStream::pair()?;
        let guard = self.channel.lock().unwrap_or_else(|p| p.into_inner());
        let channel = guard
            .as_ref()
            .ok_or_else(|| std::io::Error::other("haproxy is not running"))?;
        let fds = [theirs.as_raw_fd()];
        sendmsg::<()>(
            channel.as_raw_fd(),
            &[IoSlice::new(b"\0")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        ours.set_nonblocking(true)?;
        Ok(ours)
    }

    /// Sends one command and returns haproxy's answer.
    pub async fn command(&self, cmd: &str) -> Result<String> {
        let exchange = async {
            let mut stream = UnixStream::from_std(self.connect()?)?;
            stream.write_all(format!("{cmd}\n").as_bytes()).await?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(UpError::runtime(format!("haproxy runtime API: {e}"))),
            Err(_) => Err(UpError::runtime(format!(
                "haproxy runtime API: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// Sets a worker's state in the backend.
    pub async fn set_state(&self, server: &str, state: ServerState) -> Result<()> {
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
            Err(UpError::runtime(format!(
                "set {server} {}: {}",
                state.word(),
                answer.trim()
            )))
        }
    }

    /// Live figures for every server of the backend, and the backend itself.
    pub async fn stats(&self) -> Result<Vec<ServerStat>> {
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
    let (stot, econ) = (col("stot"), col("econ"));
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.get(px) == Some(&BACKEND) || f.get(px) == Some(&NO_WORKER))
        .map(|f| {
            let num = |i: Option<usize>| {
                i.and_then(|i| f.get(i))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            ServerStat {
                name: f.get(sv).unwrap_or(&"").to_string(),
                qcur: num(Some(qcur)),
                scur: num(Some(scur)),
                smax: num(Some(smax)),
                stot: num(stot),
                econ: num(econ),
                proxy: f.get(px).unwrap_or(&"").to_string(),
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
                   workers,BACKEND,4,7,1,2,,99,UP\n\
                   no_worker,BACKEND,0,0,0,0,,12,UP\n";
        let rows = parse_stat(csv);
        assert_eq!(rows.len(), 4);
        assert_eq!((rows[3].proxy.as_str(), rows[3].stot), ("no_worker", 12));
        assert_eq!((rows[2].proxy.as_str(), rows[2].stot), ("workers", 99));
        assert_eq!(rows[0].name, "w1");
        assert_eq!((rows[0].scur, rows[0].smax), (1, 1));
        assert_eq!(rows[1].status, "MAINT");
        assert_eq!((rows[2].name.as_str(), rows[2].qcur), ("BACKEND", 4));
    }
}
