//! How a worker writes its events (events.rs) without ever blocking a
//! render: they go through a bounded channel to a writer thread; if the
//! supervisor stops reading and the pipe fills up, events are dropped (and
//! counted) rather than stalling a render. Under load the writer sends
//! request events in batches (at most [`COALESCE`] late): one write, and one
//! wake-up of the supervisor, per batch instead of per request
//! (bench/README.md, "Where a small request's CPU goes").

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use crate::events::{Event, Outcome};

/// How long the writer may hold a request event to send it with the ones
/// that follow. Metrics and recycling may lag by this much; the ready line,
/// heartbeats, quarantines and requests with a failed job are never held.
pub const COALESCE: Duration = Duration::from_millis(10);

/// Where the render thread sends events. Cheap to clone.
#[derive(Clone, Default)]
pub struct EventSink {
    /// The writer thread's inbox; `None` when events are off.
    tx: Option<SyncSender<ToWriter>>,
    /// Events dropped because the writer was behind.
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// Events off: `emit` does nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Events as JSON lines to `out` (stdout, or the pipe the supervisor
    /// handed over: `--events-fd`), written by a dedicated thread.
    pub fn to(out: Box<dyn Write + Send>) -> Self {
        let (tx, rx) = sync_channel::<ToWriter>(4096);
        std::thread::Builder::new()
            .name("ssrd-events".into())
            .spawn(move || write_lines(rx, out))
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
    pub fn emit(&self, event: &Event) {
        let Some(tx) = &self.tx else { return };
        let Ok(mut line) = serde_json::to_string(event) else {
            return;
        };
        line.push('\n');
        match tx.try_send(ToWriter::Line(line, event.may_wait())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits (at most `within`) until every event emitted so far is
    /// written: a worker about to exit must not take its last request
    /// events with it.
    pub fn flush(&self, within: Duration) {
        let Some(tx) = &self.tx else { return };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        if tx.try_send(ToWriter::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(within);
        }
    }

    /// How many events were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Event {
    /// Whether the writer may hold this event back for [`COALESCE`]: only
    /// a request whose jobs all rendered (its counts are all it carries).
    fn may_wait(&self) -> bool {
        match self {
            Event::Request(r) => !r.abandoned && r.jobs.iter().all(|j| j.outcome == Outcome::Ok),
            _ => false,
        }
    }
}

/// What the writer thread is sent.
enum ToWriter {
    /// One event line, and whether it may wait for others ([`COALESCE`]).
    Line(String, bool),
    /// Write everything now, then say so.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The writer thread: one write per batch of lines. When the first line of
/// a batch may wait, it sleeps [`COALESCE`] (senders never wake it) and
/// then takes whatever else has arrived.
fn write_lines(rx: Receiver<ToWriter>, mut out: Box<dyn Write + Send>) {
    let mut batch = String::new();
    let mut flushed = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // Sleep at most once, and never while holding a line that may not
        // wait.
        let mut hold = true;
        while let Some(msg) = next.take() {
            match msg {
                ToWriter::Line(line, may_wait) => {
                    batch.push_str(&line);
                    if may_wait && hold {
                        std::thread::sleep(COALESCE);
                    }
                    hold = false;
                }
                ToWriter::Flush(done) => flushed.push(done),
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty()
            && out
                .write_all(batch.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
        {
            // The supervisor is gone; nobody is listening.
            return;
        }
        batch.clear();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CacheFigures, Heartbeat, JobEvent, Request};

    /// Records each write the writer thread makes.
    #[derive(Clone, Default)]
    struct Recorder(Arc<std::sync::Mutex<Vec<String>>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let text = String::from_utf8_lossy(buf).into_owned();
            self.0.lock().unwrap().push(text);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn request(id: &str, outcome: Outcome) -> Event {
        Event::Request(Request {
            id: id.into(),
            wait_ms: 0.0,
            render_ms: 0.1,
            jobs: vec![JobEvent {
                name: Some("A".into()),
                ms: 0.1,
                outcome,
            }],
            heap_used: 1,
            heap_limit: 2,
            abandoned: false,
            hash: "h".into(),
        })
    }

    #[test]
    fn request_events_go_out_in_batches_in_order_and_flush_waits_for_them() {
        let recorder = Recorder::default();
        let sink = EventSink::to(Box::new(recorder.clone()));
        for i in 0..20 {
            sink.emit(&request(&format!("r{i}"), Outcome::Ok));
        }
        sink.emit(&request("failed", Outcome::Timeout));
        sink.flush(Duration::from_secs(5));
        let writes = recorder.0.lock().unwrap().clone();
        let lines: Vec<Event> = writes
            .concat()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ids: Vec<String> = lines
            .iter()
            .map(|e| match e {
                Event::Request(r) => r.id.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        let mut expected: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
        expected.push("failed".into());
        assert_eq!(ids, expected);
        // 21 events emitted at once: written together, not one by one.
        assert!(writes.len() <= 2, "{} writes", writes.len());
    }

    #[test]
    fn only_requests_whose_jobs_all_rendered_may_wait() {
        assert!(request("a", Outcome::Ok).may_wait());
        assert!(!request("b", Outcome::Error).may_wait());
        let beat = Event::Heartbeat(Heartbeat {
            heap_used: 1,
            heap_limit: 2,
            rss: 3,
            requests: 4,
            dropped_events: 0,
            trace_export_failures: 0,
            render_cache: CacheFigures::default(),
        });
        assert!(!beat.may_wait());
    }
}
