//! When to recycle a healthy-looking worker: after a number of requests
//! (jittered so workers never restart together), or when its JS heap or RSS
//! crosses a limit. Leaks in bundles are common and slow; recycling turns
//! them into routine, zero-failure replacements.

use super::reason::Reason;

/// The per-tier recycling thresholds.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Mean requests between recycles; 0 = never.
    pub requests: u64,
    /// Heap share of the limit, in percent, that triggers a recycle.
    pub heap_percent: u64,
    /// RSS in bytes that triggers a recycle; 0 = never.
    pub rss_bytes: u64,
}

impl Policy {
    /// The request count after which one worker is recycled: the mean ±20 %,
    /// from `random` in [0, 1).
    pub fn request_quota(&self, random: f64) -> Option<u64> {
        (self.requests > 0).then(|| {
            let factor = 0.8 + 0.4 * random.clamp(0.0, 1.0);
            ((self.requests as f64) * factor).round().max(1.0) as u64
        })
    }

    /// Whether a worker with these figures should be recycled.
    pub fn check(
        &self,
        requests: u64,
        quota: Option<u64>,
        heap_used: u64,
        heap_limit: u64,
        rss: u64,
    ) -> Option<Reason> {
        if quota.is_some_and(|q| requests >= q) {
            return Some(Reason::Requests);
        }
        if heap_limit > 0 && heap_used * 100 >= heap_limit * self.heap_percent {
            return Some(Reason::Heap);
        }
        if self.rss_bytes > 0 && rss >= self.rss_bytes {
            return Some(Reason::Rss);
        }
        None
    }
}

/// A small xorshift generator for jitter: no need for a crate.
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock and pid: tiers started together still differ.
    pub fn from_clock() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9)
            ^ u64::from(std::process::id()) << 32;
        Jitter::seeded(seed)
    }

    /// A fixed sequence, for tests.
    pub fn seeded(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    /// A number in [0, 1).
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_spread_within_twenty_percent() {
        let p = Policy {
            requests: 1000,
            heap_percent: 80,
            rss_bytes: 0,
        };
        let mut j = Jitter::seeded(42);
        let quotas: Vec<u64> = (0..200)
            .map(|_| p.request_quota(j.next()).unwrap())
            .collect();
        assert!(quotas.iter().all(|q| (800..=1200).contains(q)));
        let distinct: std::collections::HashSet<_> = quotas.iter().collect();
        assert!(distinct.len() > 50, "jittered, not all equal");
        assert_eq!(Policy { requests: 0, ..p }.request_quota(0.5), None);
    }

    #[test]
    fn thresholds() {
        let p = Policy {
            requests: 10,
            heap_percent: 80,
            rss_bytes: 1 << 30,
        };
        assert_eq!(p.check(10, Some(10), 0, 100, 0), Some(Reason::Requests));
        assert_eq!(p.check(1, Some(10), 80, 100, 0), Some(Reason::Heap));
        assert_eq!(p.check(1, Some(10), 79, 100, 2 << 30), Some(Reason::Rss));
        assert_eq!(p.check(1, Some(10), 79, 100, 0), None);
    }
}
