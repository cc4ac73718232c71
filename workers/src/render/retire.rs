//! When the render thread stops taking work, and the exit code that says
//! why: a pure decision over the memory readings after a request.

use crate::events::exit_code;

/// Why the render thread stopped taking work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retire {
    /// The isolate came near (or past) its heap limit: the process must be
    /// replaced.
    HeapLimit,
    /// The process's resident memory passed its limit.
    Rss,
}

impl Retire {
    /// The exit code the process ends with.
    pub fn exit_code(self) -> i32 {
        match self {
            Retire::HeapLimit => exit_code::HEAP_LIMIT,
            Retire::Rss => exit_code::MEMORY_LIMIT,
        }
    }
}

/// What the render thread read of its memory after a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Readings {
    /// V8 ran out of heap during the request.
    pub heap_exhausted: bool,
    /// The heap is past the limit it may grow to between requests.
    pub heap_over_limit: bool,
    /// The memory guard stopped a render for resident memory.
    pub memory_exceeded: bool,
    /// Resident memory now, in bytes.
    pub rss: u64,
}

/// Whether the isolate must retire after a request, and why: the heap comes
/// first (its exit code tells the supervisor to look at the bundle's heap),
/// then resident memory against `rss_limit` (0: no limit).
pub fn decide(readings: Readings, rss_limit: u64) -> Option<Retire> {
    if readings.heap_exhausted || readings.heap_over_limit {
        Some(Retire::HeapLimit)
    } else if readings.memory_exceeded || (rss_limit > 0 && readings.rss > rss_limit) {
        Some(Retire::Rss)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_request_keeps_the_isolate() {
        let r = Readings {
            rss: 100,
            ..Readings::default()
        };
        assert_eq!(decide(r, 200), None);
        assert_eq!(decide(r, 0), None, "0 means no RSS limit");
    }

    #[test]
    fn the_heap_wins_over_rss_when_both_are_over() {
        let r = Readings {
            heap_exhausted: true,
            rss: 500,
            ..Readings::default()
        };
        assert_eq!(decide(r, 200), Some(Retire::HeapLimit));
        let r = Readings {
            heap_over_limit: true,
            ..Readings::default()
        };
        assert_eq!(decide(r, 0), Some(Retire::HeapLimit));
    }

    #[test]
    fn rss_past_its_limit_or_a_guard_stop_retires_for_memory() {
        let r = Readings {
            rss: 201,
            ..Readings::default()
        };
        assert_eq!(decide(r, 200), Some(Retire::Rss));
        assert_eq!(
            decide(Readings { rss: 200, ..r }, 200),
            None,
            "at the limit is fine"
        );
        let r = Readings {
            memory_exceeded: true,
            ..Readings::default()
        };
        assert_eq!(decide(r, 0), Some(Retire::Rss));
    }

    #[test]
    fn exit_codes_are_the_supervisor_contract() {
        assert_eq!(Retire::HeapLimit.exit_code(), 75);
        assert_eq!(Retire::Rss.exit_code(), 76);
    }
}
