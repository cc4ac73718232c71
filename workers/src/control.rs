//! The supervisor's control input: JSON lines on stdin (`--control`), read
//! on a thread of their own until stdin closes. Each line is one
//! [`Control`](crate::events::Control): a quarantine to apply
//! (quarantine.rs) or a caller that hung up (hangups.rs).

use std::io::BufRead;

use crate::events::Control;
use crate::hangups::Hangups;
use crate::log;
use crate::quarantine::Quarantine;

/// Applies control lines from stdin to `quarantine` and `hangups`.
pub fn follow_stdin(quarantine: Quarantine, hangups: Hangups) {
    let _ = std::thread::Builder::new()
        .name("ssrd-control".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { return };
                match serde_json::from_str::<Control>(&line) {
                    Ok(Control::Quarantine { hash, seconds }) => {
                        quarantine.add(hash, std::time::Duration::from_secs(seconds));
                    }
                    Ok(Control::Cancel { id }) => {
                        hangups.hung_up(&id);
                    }
                    Err(e) => log::warn(
                        "unreadable control line",
                        serde_json::json!({"line": line, "error": e.to_string()}),
                    ),
                }
            }
        });
}
