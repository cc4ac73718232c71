//! The memory guard: a thread that watches the process's resident memory
//! while a render runs, and ends the render that takes it past a limit.
//!
//! The heap limit and the off-heap budget (memory.rs) stop what they can
//! count at allocation time. Some memory JS can make they cannot see: a
//! WebAssembly memory grown from inside Wasm code, V8's own structures for
//! what JS asks of it (compiled code, `Intl` objects), buffers a message
//! port holds. All of it shows in the resident set, so while a render is
//! running this thread reads it every [`INTERVAL`] and, past the limit,
//! ends the render through the watchdog (as a deadline would) and marks it
//! tripped: the job fails `MemoryLimitExceeded` and the worker retires
//! after answering (exit 76), as it does after a request that left its RSS
//! above the recycling limit.
//!
//! Marking a render's start and end is a mutex each and never a wake-up
//! while renders keep coming (a small batch is a dozen renders of 0.1 ms:
//! waking a thread for each cost a fifth of its throughput). The thread
//! keeps reading every [`INTERVAL`] while it sees renders, and goes to
//! sleep after [`IDLE_AFTER`] without one; the next render wakes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the resident set is read while a render runs. At a few GB/s
/// of memset this bounds the overshoot to tens of MB; a read of
/// `/proc/self/statm` costs microseconds.
pub const INTERVAL: Duration = Duration::from_millis(5);
/// How long without a render before the thread sleeps until the next.
pub const IDLE_AFTER: Duration = Duration::from_secs(1);

/// The resident memory past which a running render is stopped, for a
/// retirement limit of `rss_limit` bytes (0: neither): a quarter past it.
pub fn limit_for(rss_limit: u64) -> u64 {
    rss_limit.saturating_add(rss_limit / 4)
}

#[derive(Default)]
struct State {
    /// A render is running (between `begin` and `end`).
    rendering: bool,
    /// Counts renders, so a trip is matched to the render it was for.
    generation: u64,
    /// The render last stopped (each is stopped once).
    tripped_generation: u64,
    /// When the last render ended.
    last_end: Option<Instant>,
    /// The thread sleeps with nothing to watch.
    idle: bool,
    /// Set on drop: the thread exits.
    stop: bool,
}

struct Shared {
    /// The limit, bytes.
    limit: u64,
    state: Mutex<State>,
    wake: Condvar,
    /// Set when a render passed the limit; read (and cleared) by `end`.
    tripped: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running guard thread for one isolate.
pub struct MemoryGuard {
    /// State shared with the thread.
    shared: Arc<Shared>,
    /// The thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

impl MemoryGuard {
    /// Watches for RSS above `limit` bytes while a render runs, calling
    /// `stop` (which ends the render) when it is. `read_rss` is how the
    /// resident set is read (procfs in the worker; a fake in tests).
    pub fn new(
        limit: u64,
        read_rss: impl Fn() -> u64 + Send + 'static,
        stop: impl Fn() + Send + 'static,
    ) -> MemoryGuard {
        let shared = Arc::new(Shared {
            limit,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            tripped: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ssrd-memory".into())
            .spawn(move || watch(&thread_shared, limit, &read_rss, &stop))
            .expect("spawning the memory guard thread");
        MemoryGuard {
            shared,
            thread: Some(thread),
        }
    }

    /// The limit, bytes.
    pub fn limit(&self) -> u64 {
        self.shared.limit
    }

    /// A render starts.
    pub fn begin(&self) {
        let mut st = self.shared.lock();
        st.rendering = true;
        st.generation += 1;
        self.shared.tripped.store(false, Ordering::SeqCst);
        let wake = st.idle;
        drop(st);
        if wake {
            self.shared.wake.notify_one();
        }
    }

    /// The render ended; true if it passed the limit (and was stopped).
    pub fn end(&self) -> bool {
        let mut st = self.shared.lock();
        st.rendering = false;
        st.last_end = Some(Instant::now());
        drop(st);
        self.shared.tripped.swap(false, Ordering::SeqCst)
    }
}

impl Drop for MemoryGuard {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(shared: &Shared, limit: u64, read_rss: &dyn Fn() -> u64, stop: &dyn Fn()) {
    let mut st = shared.lock();
    loop {
        if st.stop {
            return;
        }
        let quiet = !st.rendering && st.last_end.is_none_or(|t| t.elapsed() >= IDLE_AFTER);
        if quiet {
            st.idle = true;
            st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            st.idle = false;
            continue;
        }
        st = shared
            .wake
            .wait_timeout(st, INTERVAL)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        if st.stop || !st.rendering || st.tripped_generation == st.generation {
            continue;
        }
        let generation = st.generation;
        drop(st);
        let over = read_rss() > limit;
        st = shared.lock();
        // Still the same render: stop it, once.
        if over && st.rendering && st.generation == generation {
            st.tripped_generation = generation;
            shared.tripped.store(true, Ordering::SeqCst);
            stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize};

    fn guard(limit: u64) -> (MemoryGuard, Arc<AtomicU64>, Arc<AtomicUsize>) {
        let rss = Arc::new(AtomicU64::new(100));
        let stops = Arc::new(AtomicUsize::new(0));
        let (r, s) = (Arc::clone(&rss), Arc::clone(&stops));
        let g = MemoryGuard::new(
            limit,
            move || r.load(Ordering::SeqCst),
            move || {
                s.fetch_add(1, Ordering::SeqCst);
            },
        );
        (g, rss, stops)
    }

    #[test]
    fn a_render_under_the_limit_is_left_alone() {
        let (g, _rss, stops) = guard(1000);
        g.begin();
        std::thread::sleep(INTERVAL * 6);
        assert!(!g.end());
        assert_eq!(stops.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_render_past_the_limit_is_stopped_once_and_reported() {
        let (g, rss, stops) = guard(1000);
        g.begin();
        rss.store(5000, Ordering::SeqCst);
        std::thread::sleep(INTERVAL * 8);
        assert!(g.end(), "tripped");
        assert_eq!(stops.load(Ordering::SeqCst), 1, "stopped once");
        // The next render starts clean (and is stopped too while RSS stays
        // over: the process retires after the first anyway).
        rss.store(100, Ordering::SeqCst);
        g.begin();
        std::thread::sleep(INTERVAL * 4);
        assert!(!g.end());
    }

    #[test]
    fn between_renders_nothing_is_read_or_stopped() {
        let (g, rss, stops) = guard(1000);
        rss.store(5000, Ordering::SeqCst);
        std::thread::sleep(INTERVAL * 6);
        assert_eq!(stops.load(Ordering::SeqCst), 0);
        drop(g);
    }
}
