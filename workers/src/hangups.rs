//! Callers that hung up, as the supervisor reports them.
//!
//! A caller that goes away closes its connection to nginx, and nginx closes
//! its connection to haproxy; but haproxy (in HTTP mode, which the tier
//! needs for retries and clean error pages) keeps the worker's connection
//! open until the answer arrives, so the worker cannot see the hang-up on
//! its socket. nginx does log it (status 499): the supervisor receives that
//! log line and tells every worker `{"control":"cancel","id":…}`. The
//! request with that id, if this worker has it, is dropped at once, which
//! stops its render (render/queue.rs) exactly as a closed connection does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// A request id's wake-up, and how many handlers share the id (a caller
/// may reuse ids; each is woken).
type Waiters = HashMap<String, (Arc<Notify>, usize)>;

/// The requests in flight here, by request id. Cheap to clone.
#[derive(Clone, Default)]
pub struct Hangups {
    /// Request id → its waiters.
    waiting: Arc<Mutex<Waiters>>,
}

/// A request's registration; unregisters it when dropped.
pub struct Watch {
    hangups: Hangups,
    id: String,
    notify: Arc<Notify>,
}

impl Hangups {
    /// Watches for a hang-up of request `id` while the returned guard lives.
    pub fn watch(&self, id: &str) -> Watch {
        let mut map = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(id.to_string())
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        Watch {
            hangups: self.clone(),
            id: id.to_string(),
            notify: entry.0.clone(),
        }
    }

    /// The caller of request `id` hung up: wake its handlers. True if this
    /// worker had it.
    pub fn hung_up(&self, id: &str) -> bool {
        let map = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(id) {
            Some((notify, _)) => {
                notify.notify_waiters();
                // A handler not yet waiting finds the permit.
                notify.notify_one();
                true
            }
            None => false,
        }
    }
}

impl Watch {
    /// Resolves when the caller has hung up.
    pub async fn hung_up(&self) {
        self.notify.notified().await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut map = self
            .hangups
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(&self.id) {
            entry.1 -= 1;
            if entry.1 == 0 {
                map.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hang_up_wakes_the_request_with_that_id_only() {
        let h = Hangups::default();
        let a = h.watch("a");
        let b = h.watch("b");
        assert!(h.hung_up("a"));
        tokio::time::timeout(std::time::Duration::from_secs(1), a.hung_up())
            .await
            .expect("woken");
        let not_b = tokio::time::timeout(std::time::Duration::from_millis(50), b.hung_up()).await;
        assert!(not_b.is_err());
        drop(a);
        assert!(!h.hung_up("a"), "unregistered when dropped");
    }
}
