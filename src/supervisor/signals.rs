//! Signals the supervisor acts on, delivered as events on its channel.
//!
//! signal-hook runs the handlers; a thread forwards each signal to the
//! event loop: SIGCHLD (reap children), SIGHUP (reload), SIGTERM and SIGINT
//! (graceful shutdown; a second one forces).

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio::sync::mpsc::UnboundedSender;

use super::event::Event;

/// Installs the handlers and starts the forwarding thread.
pub fn forward(tx: UnboundedSender<Event>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGCHLD, SIGHUP, SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("ssrd-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.send(Event::Signal(signal)).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}
