//! Requests this worker refuses to render: ones that crashed two workers
//! in a row (the supervisor decides, from the slates, and tells every worker
//! on its control input). A quarantined request is answered at once with a
//! clear error instead of taking down another process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The quarantined request hashes and until when. Cheap to clone.
#[derive(Clone, Default)]
pub struct Quarantine {
    /// Hash → end of quarantine.
    until: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Quarantine {
    /// How much longer `hash` stays quarantined, if it is.
    pub fn remaining(&self, hash: &str) -> Option<Duration> {
        let mut map = self.until.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, until| *until > now);
        map.get(hash).map(|until| *until - now)
    }

    /// Quarantines `hash` for `duration`.
    pub fn add(&self, hash: String, duration: Duration) {
        let mut map = self.until.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(hash, Instant::now() + duration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let q = Quarantine::default();
        q.add("a".into(), Duration::from_millis(50));
        assert!(q.remaining("a").is_some());
        assert!(q.remaining("b").is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(q.remaining("a").is_none());
    }
}
