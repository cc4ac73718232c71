//! Keeps the run dir there while the tier runs. Deleting it (a careless
//! `rm -rf /tmp/*`, a tmpfiles cleaner) takes the rendered configs, the
//! bundle store, the pid file and the lock file with it. Nothing running
//! needs them at once (haproxy's runtime API is a socket pair, every
//! listening socket is held by the supervisor), but the next worker,
//! nginx or haproxy start would. So the supervisor checks every tick and,
//! if the directory is gone, recreates it and everything it needs, takes
//! the lock again, and has nginx reopen its log files there.

use nix::sys::signal::Signal;
use serde_json::json;
use ssrd_worker::log::{self, LogEvent};

use super::Supervisor;
use crate::error::{Result, UpError};
use crate::{configs, leftovers, rundir};

impl Supervisor {
    /// Recreates the run dir if it was deleted.
    pub(super) fn keep_run_dir(&mut self) {
        if self.config.run_dir.is_dir() {
            return;
        }
        log::emit(
            LogEvent::RunDirDeleted,
            "the run dir was deleted while the tier runs; recreating it",
            json!({"run_dir": self.config.run_dir}),
        );
        match self.recreate_run_dir() {
            Ok(()) => log::emit(
                LogEvent::RunDirRecreated,
                "run dir recreated: configs, bundle, pid file and lock are back",
                json!({"run_dir": self.config.run_dir}),
            ),
            Err(e) => {
                // Without a run dir no process can be (re)started: stop
                // cleanly rather than limp on.
                log::emit(
                    LogEvent::RunDirLost,
                    "cannot recreate the run dir; stopping the tier",
                    json!({"run_dir": self.config.run_dir, "error": e}),
                );
                self.on_stop_signal(false);
            }
        }
    }

    fn recreate_run_dir(&mut self) -> Result<()> {
        let dir = self.config.run_dir.clone();
        rundir::prepare(&dir)?;
        self.lock = leftovers::lock(&dir)?;
        let in_rotation: Vec<bool> = self.slots.iter().map(|s| s.in_rotation).collect();
        configs::write_configs(
            &self.config,
            configs::current_nofile(),
            &self.hangup,
            &in_rotation,
        )?;
        rundir::write_file(
            &dir,
            "ssrd.pid",
            format!("{}\n", std::process::id()).as_bytes(),
        )
        .map_err(|e| UpError::setup(format!("writing {}/ssrd.pid: {e}", dir.display())))?;
        rundir::write_stop_plan(&dir, self.config.stop_plan()).map_err(|e| {
            UpError::setup(format!("writing the stop plan in {}: {e}", dir.display()))
        })?;
        self.store.restore()?;
        // nginx's log files went with the directory: reopen them.
        self.nginx.signal(Signal::SIGUSR1);
        Ok(())
    }
}
