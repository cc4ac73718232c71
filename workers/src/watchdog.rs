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
//!
//! Each arming carries the tag of the request it renders for. A
//! [`Canceller`] (held by the HTTP side) moves the deadline of a render to
//! *now* if, and only if, it is still rendering for that tag: a caller that
//! went away stops its render at once, and never one that came after it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Something the watchdog can stop. Implemented for V8's isolate handle; a
/// trait so the timing logic is testable without an isolate.
pub trait Terminate: Send + 'static {
    /// Stops the render armed as `generation`.
    fn terminate(&self, generation: u64);
}

/// The render being timed.
#[derive(Clone, Copy)]
struct ArmedRender {
    /// Counts arms, so a late firing is matched to the render it was for.
    generation: u64,
    /// When it must end.
    deadline: Instant,
    /// The request it renders for (see [`Canceller`]).
    tag: u64,
}

#[derive(Default)]
struct State {
    /// The armed render, if any.
    armed: Option<ArmedRender>,
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

impl Armed {
    /// Which arming this is (what `Terminate::terminate` is told).
    pub fn generation(&self) -> u64 {
        self.0
    }
}

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

    /// Starts timing a render that must finish within `timeout`, for the
    /// request tagged `tag`.
    pub fn arm(&self, timeout: Duration, tag: u64) -> Armed {
        let mut st = self.shared.lock();
        st.generation += 1;
        let generation = st.generation;
        let deadline = Instant::now() + timeout;
        st.armed = Some(ArmedRender {
            generation,
            deadline,
            tag,
        });
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
        if st.armed.is_some_and(|a| a.generation == armed.0) {
            st.armed = None;
        }
        st.fired.take() == Some(armed.0)
    }

    /// A handle that can end this watchdog's renders early, from any thread.
    pub fn canceller(&self) -> Canceller {
        Canceller {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Ends the render of one request at once, from another thread.
#[derive(Clone)]
pub struct Canceller {
    /// The watchdog's state.
    shared: Arc<Shared>,
}

impl Canceller {
    /// If a render for the request tagged `tag` is being timed, its deadline
    /// becomes now (the watchdog terminates it as if it had run out).
    pub fn cancel(&self, tag: u64) {
        let mut st = self.shared.lock();
        let Some(armed) = st.armed.as_mut().filter(|a| a.tag == tag) else {
            return;
        };
        armed.deadline = Instant::now();
        drop(st);
        self.shared.wake.notify_one();
    }
}

impl Canceller {
    /// Ends whatever render is being timed now, whichever request it is
    /// for (the memory guard's way to stop a render).
    pub fn cancel_current(&self) {
        let mut st = self.shared.lock();
        let Some(armed) = st.armed.as_mut() else {
            return;
        };
        armed.deadline = Instant::now();
        drop(st);
        self.shared.wake.notify_one();
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
            Some(ArmedRender {
                generation,
                deadline,
                ..
            }) => {
                let now = Instant::now();
                if now >= deadline {
                    target.terminate(generation);
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
        fn terminate(&self, _generation: u64) {
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
        let armed = w.arm(Duration::from_millis(20), 1);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert!(w.disarm(armed), "disarm reports the firing");
    }

    #[test]
    fn disarmed_in_time_never_fires() {
        let (w, n) = watchdog();
        let armed = w.arm(Duration::from_millis(300), 1);
        assert!(!w.disarm(armed));
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(n.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_shorter_deadline_after_a_longer_one_still_fires_on_time() {
        let (w, n) = watchdog();
        let long = w.arm(Duration::from_secs(30), 1);
        assert!(!w.disarm(long));
        let short = w.arm(Duration::from_millis(20), 2);
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
            let armed = w.arm(Duration::from_millis(50), 1);
            assert!(!w.disarm(armed));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(n.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_firing_is_not_reported_to_the_next_render() {
        let (w, n) = watchdog();
        let first = w.arm(Duration::from_millis(1), 1);
        std::thread::sleep(Duration::from_millis(100));
        let second = w.arm(Duration::from_secs(10), 2);
        assert!(!w.disarm(second));
        assert!(!w.disarm(first), "the re-arm cleared the old firing");
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn cancel_ends_only_the_render_of_its_own_request() {
        let (w, n) = watchdog();
        let c = w.canceller();
        let armed = w.arm(Duration::from_secs(30), 7);
        c.cancel(8);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(n.load(Ordering::SeqCst), 0, "another request's cancel");
        c.cancel(7);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(n.load(Ordering::SeqCst), 1, "ended at once");
        assert!(w.disarm(armed));
        // A cancel that comes after its render finished hits nothing.
        let next = w.arm(Duration::from_secs(30), 9);
        c.cancel(7);
        std::thread::sleep(Duration::from_millis(100));
        assert!(!w.disarm(next));
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }
}
