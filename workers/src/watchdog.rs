//! The watchdog: a thread that ends a render running past its deadline.
//!
//! The render thread arms the watchdog with a deadline before it calls into
//! JS and disarms it afterwards. If the deadline passes first, the watchdog
//! calls V8's `terminate_execution` through a thread-safe isolate handle; the
//! JS stack unwinds (no `catch` can stop it) and the render thread answers the
//! job as a `RenderTimeout`, cancels the termination and carries on.
//!
//! Arming, disarming and firing happen under one mutex, so once `disarm`
//! returns no termination can land on a later, innocent render; and `disarm`
//! reports whether it fired so the caller knows to cancel the termination.
//!
//! Arming is on the render hot path (every job), so it wakes the thread
//! only when it must: when the thread sleeps with no deadline, or until a
//! later one than the new deadline. Otherwise the thread wakes at its old
//! deadline, sees the newer one and sleeps again: at most one wake-up per
//! render timeout instead of one per job.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Something the watchdog can stop. Implemented for V8's isolate handle; a
/// trait so the timing logic is testable without an isolate.
pub trait Terminate: Send + 'static {
    fn terminate(&self);
}

impl Terminate for deno_core::v8::IsolateHandle {
    fn terminate(&self) {
        self.terminate_execution();
    }
}

#[derive(Default)]
struct State {
    /// The armed render: its generation and deadline.
    armed: Option<(u64, Instant)>,
    /// The generation the watchdog last terminated, until `disarm` reads it.
    fired: Option<u64>,
    /// Counts arms so a late firing is matched to the render it was for.
    generation: u64,
    /// Set on drop: the thread exits.
    stop: bool,
    /// What the thread is sleeping until: `None` while running or with no
    /// deadline at all (`idle`), so `arm` knows whether to wake it.
    sleeping_until: Option<Instant>,
    /// The thread is asleep with no deadline.
    idle: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State inconsistent
        // (every update is a single assignment), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running watchdog thread bound to one isolate.
pub struct Watchdog {
    /// State shared with the thread.
    shared: Arc<Shared>,
    /// The thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

/// Returned by `arm`; pass it back to `disarm`.
#[must_use]
pub struct Armed(u64);

impl Watchdog {
    pub fn new(target: impl Terminate) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ssrd-watchdog".into())
            .spawn(move || run(&thread_shared, &target))
            .expect("spawning the watchdog thread");
        Watchdog {
            shared,
            thread: Some(thread),
        }
    }

    /// Starts timing a render that must finish within `timeout`.
    pub fn arm(&self, timeout: Duration) -> Armed {
        let mut st = self.shared.lock();
        st.generation += 1;
        let generation = st.generation;
        let deadline = Instant::now() + timeout;
        st.armed = Some((generation, deadline));
        st.fired = None;
        let must_wake = st.idle || st.sleeping_until.is_some_and(|until| deadline < until);
        drop(st);
        if must_wake {
            self.shared.wake.notify_one();
        }
        Armed(generation)
    }

    /// Stops timing. Returns true if the watchdog terminated this render: the
    /// caller must then cancel the isolate's pending termination.
    pub fn disarm(&self, armed: Armed) -> bool {
        let mut st = self.shared.lock();
        if matches!(st.armed, Some((g, _)) if g == armed.0) {
            st.armed = None;
        }
        st.fired.take() == Some(armed.0)
    }
}

fn run(shared: &Shared, target: &dyn Terminate) {
    let mut st = shared.lock();
    loop {
        if st.stop {
            return;
        }
        match st.armed {
            None => {
                st.idle = true;
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                st.idle = false;
            }
            Some((generation, deadline)) => {
                let now = Instant::now();
                if now >= deadline {
                    target.terminate();
                    st.fired = Some(generation);
                    st.armed = None;
                } else {
                    st.sleeping_until = Some(deadline);
                    st = shared
                        .wake
                        .wait_timeout(st, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    st.sleeping_until = None;
                }
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counter(Arc<AtomicU32>);
    impl Terminate for Counter {
        fn terminate(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn watchdog() -> (Watchdog, Arc<AtomicU32>) {
        let n = Arc::new(AtomicU32::new(0));
        (Watchdog::new(Counter(Arc::clone(&n))), n)
    }

    #[test]
    fn fires_once_after_the_deadline() {
        let (w, n) = watchdog();
        let armed = w.arm(Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert!(w.disarm(armed), "disarm reports the firing");
    }

    #[test]
    fn disarmed_in_time_never_fires() {
        let (w, n) = watchdog();
        let armed = w.arm(Duration::from_millis(300));
        assert!(!w.disarm(armed));
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(n.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_shorter_deadline_after_a_longer_one_still_fires_on_time() {
        let (w, n) = watchdog();
        let long = w.arm(Duration::from_secs(30));
        assert!(!w.disarm(long));
        let short = w.arm(Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            n.load(Ordering::SeqCst),
            1,
            "woken for the earlier deadline"
        );
        assert!(w.disarm(short));
    }

    #[test]
    fn many_quick_renders_never_fire() {
        let (w, n) = watchdog();
        for _ in 0..10_000 {
            let armed = w.arm(Duration::from_millis(50));
            assert!(!w.disarm(armed));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(n.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_firing_is_not_reported_to_the_next_render() {
        let (w, n) = watchdog();
        let first = w.arm(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(100));
        let second = w.arm(Duration::from_secs(10));
        assert!(!w.disarm(second));
        assert!(!w.disarm(first), "the re-arm cleared the old firing");
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }
}
