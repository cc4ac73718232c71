//! Callers that hang up: nginx reports them, the workers stop rendering.
//!
//! A caller that goes away (the Hypernova Ruby client gives up at 0.6 s)
//! closes its connection; nginx closes its own to haproxy and logs the
//! request with status 499. haproxy, in HTTP mode, keeps the worker's
//! connection open until the answer, so the worker would render on for no
//! one. nginx therefore sends each 499 as a syslog datagram to a loopback
//! UDP socket the supervisor holds ([`HangupFeed`]), carrying a random
//! secret (only readers of the private run dir's nginx.conf know it) and
//! the request id; the supervisor tells every worker to cancel that id
//! (workers/src/hangups.rs). The render stops within milliseconds.

use std::io::Read;

use tokio::sync::mpsc::UnboundedSender;

use super::event::Event;
use super::Supervisor;
use crate::error::{Result, UpError};
use crate::templates::HangupTarget;
use ssrd_worker::events::Control;

/// The supervisor's end: a bound UDP socket and its target.
pub struct HangupFeed {
    /// Bound to 127.0.0.1, a port the kernel chose.
    socket: std::net::UdpSocket,
    /// What nginx's config names.
    pub target: HangupTarget,
}

impl HangupFeed {
    pub fn bind() -> Result<HangupFeed> {
        let socket = std::net::UdpSocket::bind(("127.0.0.1", 0))
            .map_err(|e| UpError::setup(format!("binding the hang-up socket: {e}")))?;
        let port = socket
            .local_addr()
            .map_err(|e| UpError::setup(format!("hang-up socket: {e}")))?
            .port();
        let mut bytes = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|e| UpError::setup(format!("reading /dev/urandom: {e}")))?;
        let secret = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(HangupFeed {
            socket,
            target: HangupTarget { port, secret },
        })
    }

    /// Forwards each hang-up nginx reports into the event loop, for ever.
    pub fn forward(self, tx: UnboundedSender<Event>) -> Result<()> {
        self.socket
            .set_nonblocking(true)
            .map_err(|e| UpError::setup(format!("hang-up socket: {e}")))?;
        let socket = tokio::net::UdpSocket::from_std(self.socket)
            .map_err(|e| UpError::setup(format!("hang-up socket: {e}")))?;
        let secret = self.target.secret;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                if !from.ip().is_loopback() {
                    continue;
                }
                let line = String::from_utf8_lossy(&buf[..n]);
                if let Some(id) = request_id(&line, &secret) {
                    if tx.send(Event::HungUp(id)).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(())
    }
}

/// The request id in nginx's syslog line (`<190>Dec  1 02:30:00 ssrd:
/// SECRET ID`), if the line carries the secret.
pub fn request_id(line: &str, secret: &str) -> Option<String> {
    let (_, rest) = line.split_once(&format!(" {secret} "))?;
    let id = rest.trim();
    (!id.is_empty() && id.len() <= 256).then(|| id.to_string())
}

impl Supervisor {
    /// The caller of request `id` hung up: every worker is told; the one
    /// rendering it stops.
    pub(super) fn on_hung_up(&mut self, id: String) {
        let mut line = serde_json::to_string(&Control::Cancel { id }).unwrap_or_default();
        line.push('\n');
        for slot in &mut self.slots {
            super::quarantine::send(slot.stdin.as_mut(), &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lines_with_the_secret_name_a_request() {
        let line = "<190>Dec  1 02:30:00 ssrd: 0123abcd 6741f011a6ed4fd42d06957b50acc606";
        assert_eq!(
            request_id(line, "0123abcd").as_deref(),
            Some("6741f011a6ed4fd42d06957b50acc606")
        );
        assert_eq!(request_id(line, "ffff"), None);
        assert_eq!(request_id("<190>x ssrd: 0123abcd ", "0123abcd"), None);
    }
}
