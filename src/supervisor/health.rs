//! The tier's `/health`, answered by the supervisor (nginx forwards the
//! public port's `/health` here; the metrics listener answers it too).
//!
//! The supervisor is the one process that knows the whole truth: how many
//! workers are in rotation, whether the tier is draining before a stop, and
//! which bundle it serves. It publishes that into a [`Health`] after every
//! event; the HTTP side only reads it. 200 while at least one worker is in
//! rotation and the tier is not draining; 503 with the reason otherwise, so
//! a load balancer or a Kubernetes readiness probe takes the host out of
//! rotation before it stops accepting (docs/operations.md, "Stop").

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::json;

/// The bundle a tier serves, as operators see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BundleId {
    /// SHA-256 of the bundle's source, hex.
    pub sha256: String,
    /// When the tier started serving it (Unix seconds).
    pub loaded_at: f64,
}

impl BundleId {
    /// The first 12 hex digits: what headers and logs show.
    pub fn short(&self) -> &str {
        ssrd_worker::config::short_hash(&self.sha256)
    }
}

/// What `/health` says, published by the supervisor.
#[derive(Debug, Default)]
pub struct Health {
    /// Worker slots haproxy may send requests to.
    in_rotation: AtomicUsize,
    /// Worker slots configured.
    workers: AtomicUsize,
    /// A stop signal arrived: fail readiness while still serving.
    draining: AtomicBool,
    /// The bundle new workers start from.
    bundle: Mutex<BundleId>,
}

impl Health {
    /// Publishes the rotation: `in_rotation` of `workers` slots take work.
    pub fn set_rotation(&self, in_rotation: usize, workers: usize) {
        self.in_rotation.store(in_rotation, Ordering::Relaxed);
        self.workers.store(workers, Ordering::Relaxed);
    }

    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn set_bundle(&self, id: BundleId) {
        *self.bundle.lock().unwrap_or_else(|p| p.into_inner()) = id;
    }

    pub fn bundle(&self) -> BundleId {
        self.bundle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The status and JSON body of `/health` now.
    pub fn report(&self) -> (StatusCode, serde_json::Value) {
        let in_rotation = self.in_rotation.load(Ordering::Relaxed);
        let workers = self.workers.load(Ordering::Relaxed);
        let (status, state, reason) = if self.draining() {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "draining",
                Some("stopping: still serving, but take this host out of rotation"),
            )
        } else if in_rotation == 0 {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                Some("no render worker is in rotation"),
            )
        } else {
            (StatusCode::OK, "ok", None)
        };
        let bundle = self.bundle();
        let body = json!({
            "status": state,
            "reason": reason,
            "workers_in_rotation": in_rotation,
            "workers": workers,
            "bundle": {
                "sha256": bundle.sha256,
                "short": bundle.short(),
                "loaded_at": bundle.loaded_at,
            },
        });
        (status, body)
    }

    /// `/health` as an HTTP response (with the bundle in `X-Ssrd-Bundle`).
    pub fn response(&self) -> Response<Full<Bytes>> {
        let (status, body) = self.report();
        let short = self.bundle().short().to_string();
        let mut r = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert("cache-control", HeaderValue::from_static("no-store"));
        if let Ok(v) = HeaderValue::from_str(&short) {
            h.insert("x-ssrd-bundle", v);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_a_worker_in_rotation_and_not_draining() {
        let h = Health::default();
        h.set_bundle(BundleId {
            sha256: "0123456789abcdef".into(),
            loaded_at: 1.5,
        });
        h.set_rotation(0, 2);
        let (status, body) = h.report();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "unavailable");
        h.set_rotation(1, 2);
        let (status, body) = h.report();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["bundle"]["short"], "0123456789ab");
        assert_eq!(body["workers_in_rotation"], 1);
        h.set_draining(true);
        let (status, body) = h.report();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "draining");
        assert!(body["reason"].as_str().unwrap().contains("still serving"));
    }
}
