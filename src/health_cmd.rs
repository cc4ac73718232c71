//! `ssrd health [--wait SECS]`: asks a running tier's supervisor for
//! `/health` (on its metrics address) and says whether it is ready.
//!
//! `/ping` is nginx's and answers as soon as the tier accepts connections;
//! `/health` answers 200 only once a worker is in rotation (and not while
//! the tier drains). Requests sent earlier wait for the first worker, but a
//! script, a dependent service or a container that wants its first
//! renders served (not merely queued) waits on this.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::config::Config;

/// How long one `/health` request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between tries while waiting.
const POLL: Duration = Duration::from_millis(100);

/// Prints the last answer (or why there was none); 0 once ready, else 1.
pub fn run(config: &Config, wait: Duration) -> i32 {
    let deadline = Instant::now() + wait;
    loop {
        let answer = health(config);
        let ready = matches!(&answer, Ok((200, _)));
        if ready || Instant::now() >= deadline {
            match answer {
                Ok((status, body)) => {
                    println!("{}", body.trim_end());
                    if status != 200 {
                        eprintln!("ssrd health: not ready ({status})");
                    }
                }
                Err(e) => eprintln!(
                    "ssrd health: no answer from {} ({e}): is the tier running?",
                    config.health_addr()
                ),
            }
            return if ready { 0 } else { 1 };
        }
        std::thread::sleep(POLL);
    }
}

/// One `GET /health`: (status, body).
fn health(config: &Config) -> std::io::Result<(u16, String)> {
    let addr = config.health_addr();
    let mut stream = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    stream.write_all(b"GET /health HTTP/1.0\r\nHost: ssrd\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.take(1 << 20).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
    Ok((status, body.to_string()))
}
