//! Why a worker was restarted or replaced: one enum, which also names the
//! `ssrd_worker_restarts_total{reason}` label.

/// Why a worker process ended and another takes its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It died on its own (a crash, an outside kill -9).
    Crash,
    /// Its render thread stopped sending heartbeats; the supervisor killed it.
    Hung,
    /// A render exhausted its JS heap; it answered and exited (code 75).
    HeapLimit,
    /// Its bundle did not load (exit code 3).
    Bundle,
    /// It did not get ready in time; the supervisor killed it.
    StartTimeout,
    /// It did not stop in time after SIGTERM; the supervisor killed it.
    StopTimeout,
    /// Recycled: it served its quota of requests.
    Requests,
    /// Recycled: its JS heap passed the configured share of the limit.
    Heap,
    /// Recycled: its resident memory passed the limit.
    Rss,
    /// Replaced by a reload's new bundle.
    Reload,
}

impl Reason {
    /// Every reason, so metrics can show zeros from the start.
    pub const ALL: [Reason; 10] = [
        Reason::Crash,
        Reason::Hung,
        Reason::HeapLimit,
        Reason::Bundle,
        Reason::StartTimeout,
        Reason::StopTimeout,
        Reason::Requests,
        Reason::Heap,
        Reason::Rss,
        Reason::Reload,
    ];

    /// The metric and log label.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Crash => "crash",
            Reason::Hung => "hung",
            Reason::HeapLimit => "heap_limit",
            Reason::Bundle => "bundle",
            Reason::StartTimeout => "start_timeout",
            Reason::StopTimeout => "stop_timeout",
            Reason::Requests => "requests",
            Reason::Heap => "heap",
            Reason::Rss => "rss",
            Reason::Reload => "reload",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct() {
        let labels: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), Reason::ALL.len());
    }
}
