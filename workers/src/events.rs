//! Events for the supervisor: JSON lines on stdout after the ready line.
//!
//! With `--events`, the render thread reports every request (per-job
//! component, duration and outcome, queue wait, heap) and sends a heartbeat
//! every second while idle and between jobs. The supervisor turns these into
//! Prometheus metrics, recycling decisions and hung-worker detection.
//!
//! Emitting never blocks rendering: events go through a bounded channel to a
//! writer thread; if the supervisor stops reading and the pipe fills up,
//! events are dropped (and counted) rather than stalling a render.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use serde_json::Value;

/// Where the render thread sends events. Cheap to clone.
#[derive(Clone, Default)]
pub struct EventSink {
    /// The writer thread's inbox; `None` when events are off.
    tx: Option<SyncSender<String>>,
    /// Events dropped because the writer was behind.
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// Events off: `emit` does nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Events as JSON lines on stdout, written by a dedicated thread.
    pub fn stdout() -> Self {
        let (tx, rx) = sync_channel::<String>(4096);
        std::thread::Builder::new()
            .name("ssrd-events".into())
            .spawn(move || {
                let stdout = std::io::stdout();
                for line in rx {
                    let mut out = stdout.lock();
                    if out
                        .write_all(line.as_bytes())
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        // The supervisor is gone; nobody is listening.
                        return;
                    }
                }
            })
            .map(|_| EventSink {
                tx: Some(tx),
                dropped: Arc::default(),
            })
            .unwrap_or_default()
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues one event; never blocks.
    pub fn emit(&self, event: Value) {
        let Some(tx) = &self.tx else { return };
        let mut line = event.to_string();
        line.push('\n');
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// How many events were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
