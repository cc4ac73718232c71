//! Restart policy for crashed children: capped exponential backoff.
//!
//! A child that keeps crashing right after start is restarted ever more
//! slowly (100 ms, 200 ms, … up to 10 s) so a broken bundle or a bad deploy
//! does not spin the CPU; a child that ran for a while before dying starts
//! over from the shortest delay. (A worker that was already serving when it
//! died is restarted at once, see supervisor.rs: that is not a crash loop.)

use std::time::Duration;

/// How long a child must have run for its next crash to count as fresh.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Backoff {
    /// The delay the next restart will wait.
    next: Duration,
    /// The shortest delay.
    min: Duration,
    /// The longest delay.
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            next: min,
            min,
            max,
        }
    }

    /// Forgets past crashes: the next delay is the shortest again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The delay before the next restart, given how long the child ran.
    pub fn after_crash(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= STABLE_AFTER {
            self.next = self.min;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets_after_a_stable_run() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let quick = Duration::from_millis(10);
        let delays: Vec<u128> = (0..5).map(|_| b.after_crash(quick).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        assert_eq!(b.after_crash(STABLE_AFTER).as_millis(), 100);
        b.after_crash(quick);
        b.reset();
        assert_eq!(b.after_crash(quick).as_millis(), 100);
    }
}
