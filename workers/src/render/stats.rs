//! The render thread's counters, shared with the HTTP side's `/stats`.

use std::sync::{Mutex, MutexGuard};

use crate::events::{CacheFigures, Outcome};
use crate::js_runtime::HeapStats;

/// Counters and gauges the HTTP side reports at `/stats`.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Requests rendered (batches and single renders).
    pub requests: u64,
    /// Jobs rendered, by outcome (indexed by `Outcome::index`).
    pub jobs: [u64; Outcome::ALL.len()],
    /// V8 heap after the last request.
    pub heap: HeapStats,
    /// True while a request is being rendered.
    pub busy: bool,
    /// The request id being rendered now, if any (operators, tests).
    pub current: Option<String>,
    /// Requests whose caller went away before the answer.
    pub abandoned: u64,
    /// The render cache's figures after the last request.
    pub cache: CacheFigures,
}

impl Stats {
    /// Jobs that ended with `outcome`.
    pub fn jobs(&self, outcome: Outcome) -> u64 {
        self.jobs[outcome.index()]
    }

    /// A request starts rendering.
    pub fn begin(&mut self, request_id: &str) {
        self.busy = true;
        self.current = Some(request_id.to_string());
    }

    /// A request is done: its jobs' outcomes, the heap it left, and whether
    /// its caller went away.
    pub fn end(
        &mut self,
        outcomes: impl Iterator<Item = Outcome>,
        heap: HeapStats,
        abandoned: bool,
    ) {
        self.requests += 1;
        for outcome in outcomes {
            self.jobs[outcome.index()] += 1;
        }
        self.heap = heap;
        self.busy = false;
        self.current = None;
        self.abandoned += u64::from(abandoned);
    }
}

/// Locks the counters; a panic elsewhere never makes them unreadable.
pub fn lock(stats: &Mutex<Stats>) -> MutexGuard<'_, Stats> {
    stats.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_its_jobs_by_outcome_and_clears_busy() {
        let mut s = Stats::default();
        s.begin("r1");
        assert!(s.busy);
        assert_eq!(s.current.as_deref(), Some("r1"));
        let outcomes = [Outcome::Ok, Outcome::Ok, Outcome::Timeout];
        s.end(outcomes.into_iter(), HeapStats::default(), true);
        assert!(!s.busy);
        assert_eq!(s.current, None);
        assert_eq!(s.requests, 1);
        assert_eq!(s.abandoned, 1);
        assert_eq!(s.jobs(Outcome::Ok), 2);
        assert_eq!(s.jobs(Outcome::Timeout), 1);
        assert_eq!(s.jobs(Outcome::Error), 0);
    }
}
