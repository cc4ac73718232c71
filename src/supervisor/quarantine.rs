//! Poison requests: one whose render crashes its worker, or one that keeps
//! running to its deadline.
//!
//! Crashes: nginx retries a
//! request that was in flight when its worker died, once, on another
//! worker, with the same request id; if it crashes that one too, its
//! content (route and body hash) is quarantined: every worker answers it at
//! once with a clear error for a while, so it can take down no third
//! process.
//!
//! Keying the strikes by request id, not by content, keeps an outside kill
//! (an operator's kill -9, the OOM killer) from quarantining a popular
//! request: identical bodies from different callers are different requests,
//! and two deaths count only when they were the same request, retried.
//!
//! The supervisor learns which request was in flight from the dead
//! worker's slate (workers/src/slate.rs).
//!
//! Deadlines: a request whose render the watchdog had to end
//! (`RenderTimeout`) cost a worker its whole render timeout, and a loop
//! does that every time. The same content timing out [`TIMEOUT_STRIKES`]
//! times within [`TIMEOUT_WINDOW`] (from any callers: a render that ends at
//! its deadline is no outside accident) is quarantined the same way: it
//! then costs no worker anything, and its pages fall back to the browser as
//! they were doing anyway. The worker names each request's content in its
//! request event.
//!
//! [`Strikes`] decides (pure, unit-tested); `impl Supervisor` reads slates
//! and events and tells the workers.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use ssrd_worker::events::Control;
use ssrd_worker::log::{self, LogEvent};

use super::Supervisor;

/// Crashes of the same request within this window add up.
const WINDOW: Duration = Duration::from_secs(600);
/// Crashes that quarantine a request.
const STRIKES: u32 = 2;
/// Timeouts of the same content within this window add up.
pub const TIMEOUT_WINDOW: Duration = Duration::from_secs(60);
/// Timeouts that quarantine a content.
pub const TIMEOUT_STRIKES: u32 = 3;
/// Contents whose timeouts are counted at most (then forgotten at once):
/// the count itself is bounded, whatever callers send.
const TIMEOUT_KINDS: usize = 4096;

/// Which requests crashed workers, and which contents are quarantined.
#[derive(Debug, Default)]
pub struct Strikes {
    /// Request id → crashes so far, and when the first was.
    crashes: HashMap<String, (u32, Instant)>,
    /// Request hash → end of its quarantine.
    quarantined: HashMap<String, Instant>,
    /// Request hash → timeouts so far, and when the first was.
    timeouts: HashMap<String, (u32, Instant)>,
}

impl Strikes {
    /// Counts a crash of request `id` (content `hash`); true if that puts
    /// the content in quarantine (for `duration`, from `now`).
    pub fn crash(&mut self, id: &str, hash: &str, now: Instant, duration: Duration) -> bool {
        self.crashes
            .retain(|_, (_, first)| now.saturating_duration_since(*first) < WINDOW);
        let entry = self.crashes.entry(id.to_string()).or_insert((0, now));
        entry.0 += 1;
        if entry.0 < STRIKES {
            return false;
        }
        self.crashes.remove(id);
        self.quarantined.insert(hash.to_string(), now + duration);
        true
    }

    /// Counts a render of content `hash` that ran to its deadline; true if
    /// that puts the content in quarantine (for `duration`, from `now`).
    pub fn timeout(&mut self, hash: &str, now: Instant, duration: Duration) -> bool {
        if self.quarantined.contains_key(hash) {
            return false;
        }
        if self.timeouts.len() >= TIMEOUT_KINDS {
            self.timeouts
                .retain(|_, (_, first)| now.saturating_duration_since(*first) < TIMEOUT_WINDOW);
            if self.timeouts.len() >= TIMEOUT_KINDS {
                self.timeouts.clear();
            }
        }
        let entry = self.timeouts.entry(hash.to_string()).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= TIMEOUT_WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
        if entry.0 < TIMEOUT_STRIKES {
            return false;
        }
        self.timeouts.remove(hash);
        self.quarantined.insert(hash.to_string(), now + duration);
        true
    }

    /// The quarantines still running, with what is left of each, in whole
    /// seconds (rounded up): what a newly started worker is told.
    pub fn active(&mut self, now: Instant) -> Vec<(String, u64)> {
        self.quarantined.retain(|_, until| *until > now);
        self.quarantined
            .iter()
            .map(|(hash, until)| (hash.clone(), (*until - now).as_secs() + 1))
            .collect()
    }
}

impl Supervisor {
    /// A worker crashed: count a strike against the request it was
    /// rendering, if its slate names one.
    pub(super) fn strike(&mut self, i: usize) {
        let Some(slate) = &self.slots[i].slate else {
            return;
        };
        let in_flight = ssrd_worker::slate::read(slate);
        ssrd_worker::slate::reset(slate);
        let Some(ssrd_worker::slate::InFlight { hash, id, trace_id }) = in_flight else {
            return;
        };
        let duration = Duration::from_secs(self.config.quarantine_s);
        let quarantined = self.strikes.crash(&id, &hash, Instant::now(), duration);
        log::emit(
            LogEvent::CrashedInFlight,
            "a request was in flight when its worker crashed",
            json!({"worker": self.slots[i].name, "request_id": id, "trace_id": trace_id, "request_hash": hash, "quarantined": quarantined}),
        );
        if !quarantined {
            return;
        }
        self.quarantine(&hash, "it crashed two workers", &id, trace_id.as_deref());
    }

    /// A worker's request event: count its jobs that ran to their
    /// deadline against its content.
    pub(super) fn note_timeouts(&mut self, request: &ssrd_worker::events::Request) {
        let timed_out = request
            .jobs
            .iter()
            .any(|j| j.outcome == ssrd_worker::events::Outcome::Timeout);
        if !timed_out || request.abandoned || request.hash.is_empty() {
            return;
        }
        let duration = Duration::from_secs(self.config.quarantine_s);
        if self
            .strikes
            .timeout(&request.hash, Instant::now(), duration)
        {
            self.quarantine(
                &request.hash,
                "it ran to its deadline three times in a minute",
                &request.id,
                None,
            );
        }
    }

    /// Tells every worker to refuse `hash` for the quarantine's duration;
    /// `id` and `trace_id` name the request that tipped it over.
    fn quarantine(&mut self, hash: &str, why: &str, id: &str, trace_id: Option<&str>) {
        self.metrics.quarantined.inc();
        log::emit(
            LogEvent::RequestQuarantined,
            "request quarantined; every worker refuses it for a while",
            json!({"request_hash": hash, "request_id": id, "trace_id": trace_id, "why": why, "seconds": self.config.quarantine_s}),
        );
        let line = control_line(hash, self.config.quarantine_s);
        for slot in &mut self.slots {
            send(slot.stdin.as_mut(), &line);
        }
    }

    /// Tells a newly started worker every running quarantine.
    pub(super) fn brief(&mut self, i: usize) {
        for (hash, seconds) in self.strikes.active(Instant::now()) {
            let line = control_line(&hash, seconds);
            send(self.slots[i].stdin.as_mut(), &line);
        }
    }
}

fn control_line(hash: &str, seconds: u64) -> String {
    let control = Control::Quarantine {
        hash: hash.to_string(),
        seconds,
    };
    let mut line = serde_json::to_string(&control).unwrap_or_default();
    line.push('\n');
    line
}

/// Writes a control line to a worker's stdin; never blocks (the pipe is
/// non-blocking): a worker that does not read misses it.
pub(super) fn send(stdin: Option<&mut std::process::ChildStdin>, line: &str) {
    if let Some(stdin) = stdin {
        let _ = stdin.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_crashes_of_one_request_quarantine_its_content_for_a_while() {
        let mut s = Strikes::default();
        let t0 = Instant::now();
        let d = Duration::from_secs(300);
        assert!(!s.crash("req-1", "H", t0, d), "one crash may be bad luck");
        // The same content in another request (an outside kill of workers
        // serving a popular page) is no strike against req-1.
        assert!(!s.crash("req-2", "H", t0, d));
        assert!(s.active(t0).is_empty());
        let t1 = t0 + Duration::from_secs(1);
        assert!(s.crash("req-1", "H", t1, d), "the retry crashed too");
        let left = s.active(t0 + Duration::from_secs(2));
        assert_eq!(left, vec![("H".to_string(), 300)]);
        assert!(
            s.active(t0 + Duration::from_secs(302)).is_empty(),
            "expired"
        );
        // Crashes far apart do not add up.
        assert!(!s.crash("req-3", "J", t0, d));
        let late = t0 + WINDOW + Duration::from_secs(1);
        assert!(!s.crash("req-3", "J", late, d));
    }

    #[test]
    fn a_content_that_keeps_running_to_its_deadline_is_quarantined() {
        let mut s = Strikes::default();
        let t0 = Instant::now();
        let d = Duration::from_secs(300);
        assert!(!s.timeout("T", t0, d));
        assert!(!s.timeout("T", t0 + Duration::from_secs(1), d));
        assert!(s.timeout("T", t0 + Duration::from_secs(2), d), "the third");
        assert_eq!(s.active(t0 + Duration::from_secs(3)).len(), 1);
        assert!(!s.timeout("T", t0 + Duration::from_secs(3), d), "already");
        // Timeouts a window apart do not add up.
        assert!(!s.timeout("U", t0, d));
        assert!(!s.timeout("U", t0 + Duration::from_secs(1), d));
        assert!(!s.timeout("U", t0 + TIMEOUT_WINDOW + Duration::from_secs(2), d));
        // However many contents callers send, the count stays bounded.
        for i in 0..(2 * TIMEOUT_KINDS) {
            s.timeout(&format!("h{i}"), t0, d);
        }
        assert!(s.timeouts.len() <= TIMEOUT_KINDS);
    }
}
