//! nginx's stderr, and with it the access log (by default): a pipe whose
//! other end the supervisor reads and copies to its own stderr, so the
//! access log goes where every other line of the tier goes (the terminal,
//! journald, the container runtime), which rotates it.
//!
//! nginx opens `/dev/stderr` by path, which a pipe allows and a journald
//! socket or some terminals do not: hence the pipe even when the
//! supervisor's own stderr would do. nginx must never wait on its log, so
//! one thread drains the pipe into a bounded queue and another writes the
//! queue out; when the supervisor's stderr is slower than nginx writes,
//! output is dropped and a line says how much.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::mpsc;

/// Chunks of output waiting to be written out (each at most 64 KiB).
const QUEUE: usize = 256;

/// The pipe nginx writes its stderr to.
pub struct NginxLog {
    /// The write end, handed to every nginx the supervisor starts.
    write: OwnedFd,
}

impl NginxLog {
    /// Creates the pipe and starts copying what comes out of it.
    pub fn start() -> std::io::Result<NginxLog> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let reader_dropped = std::sync::Arc::clone(&dropped);
        std::thread::Builder::new()
            .name("ssrd-nginx-log-read".into())
            .spawn(move || drain(std::fs::File::from(read), &tx, &reader_dropped))?;
        std::thread::Builder::new()
            .name("ssrd-nginx-log-write".into())
            .spawn(move || write_out(&rx, &dropped))?;
        Ok(NginxLog { write })
    }

    /// The descriptor nginx gets as its stderr.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.write.as_fd()
    }
}

/// Reads the pipe as fast as nginx writes it; a chunk the queue has no room
/// for is dropped (and counted), never waited on.
fn drain(
    mut pipe: std::fs::File,
    tx: &mpsc::SyncSender<Vec<u8>>,
    dropped: &std::sync::atomic::AtomicU64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if let Err(mpsc::TrySendError::Full(chunk)) = tx.try_send(buf[..n].to_vec()) {
                    dropped.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Writes the queue to the supervisor's stderr, saying when output had to
/// be dropped.
fn write_out(rx: &mpsc::Receiver<Vec<u8>>, dropped: &std::sync::atomic::AtomicU64) {
    let mut stderr = std::io::stderr();
    while let Ok(chunk) = rx.recv() {
        let _ = stderr.write_all(&chunk);
        let lost = dropped.swap(0, std::sync::atomic::Ordering::Relaxed);
        if lost > 0 {
            ssrd_worker::log::emit(
                ssrd_worker::log::LogEvent::NginxLogDropped,
                "nginx log output dropped: the supervisor's stderr was slower than nginx wrote",
                serde_json::json!({"bytes": lost}),
            );
        }
    }
}
