//! Helpers for end-to-end tests: start real `ssrd` processes on loopback
//! (port 0), talk real HTTP to them, and clean up. One file per concern:
//!
//! - `paths.rs`: the repository, the built binary, bundles, fixtures;
//! - `worker.rs`: one `ssrd worker` process;
//! - `tier.rs`: a whole tier (`ssrd up`), its log as typed events;
//! - `http.rs`: the HTTP/1.1 client every test talks through;
//! - `ports.rs`: blocks of free loopback ports;
//! - `load.rs`: steady load with every outcome counted;
//! - `procs.rs`: `/proc`, signals, waiting for a child's output;
//! - `ruby.rs`: the hypernova-ruby gem rendering a page.
//!
//! Each test binary uses part of them, so unused ones are not warned about.
#![allow(dead_code)]

mod http;
mod load;
mod paths;
mod ports;
mod procs;
mod ruby;
mod tier;
mod worker;

use std::time::{Duration, Instant};

// Each test binary uses some of these; the rest are not unused code.
#[allow(unused_imports)]
pub use http::*;
#[allow(unused_imports)]
pub use load::*;
#[allow(unused_imports)]
pub use paths::*;
#[allow(unused_imports)]
pub use ports::*;
#[allow(unused_imports)]
pub use procs::*;
#[allow(unused_imports)]
pub use ruby::*;
#[allow(unused_imports)]
pub use ssrd_worker::events::{Event as WorkerEvent, Ready};
#[allow(unused_imports)]
pub use ssrd_worker::log::LogEvent;
#[allow(unused_imports)]
pub use tier::*;
#[allow(unused_imports)]
pub use worker::*;

/// The JSON log lines among `lines` that report `event` (their `event`
/// field; the words of `msg` are not what tests read).
pub fn events_in(lines: &[String], event: LogEvent) -> Vec<serde_json::Value> {
    let want = serde_json::to_value(event).expect("an event name");
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == want)
        .collect()
}

/// Every wait in the tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until `done` holds, or panics with `what` after `within`.
pub fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
