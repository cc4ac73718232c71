//! The nginx and haproxy configs in the run dir: [`crate::templates`]
//! renders them, this module writes them (with the open-file limit nginx
//! sizes its connections from), for `ssrd up` at start and for the
//! supervisor when it restarts haproxy or recreates a deleted run dir.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::config::Config;
use crate::error::{Result, UpError};
use crate::rundir;
use crate::templates::{self, HangupTarget};

/// Raises this process's open-file limit to its hard limit (children
/// inherit it) and returns it: nginx sizes its connections from it.
pub fn raise_nofile() -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// The open-file limit now, for printing configs.
pub fn current_nofile() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
}

/// Writes nginx's config, and haproxy's with these worker slots in rotation
/// (none at the first start; the supervisor rewrites it at every haproxy
/// start).
pub fn write_configs(
    config: &Config,
    nofile: u64,
    hangup: &HangupTarget,
    in_rotation: &[bool],
) -> Result<()> {
    let nginx = templates::nginx(config, nofile, hangup)?;
    rundir::subdir(&config.run_dir, "nginx")?;
    body_temp_dir(config)?;
    write(config, "nginx.conf", &nginx)?;
    write_haproxy_config(config, in_rotation)
}

/// Creates the body temp dir when it is outside the run dir (private to
/// this user, as the run dir is).
fn body_temp_dir(config: &Config) -> Result<()> {
    if config.body_temp_dir.as_os_str().is_empty() {
        return Ok(());
    }
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.body_temp_dir)
        .map_err(|e| {
            UpError::setup(format!(
                "body_temp_dir {}: {e}",
                config.body_temp_dir.display()
            ))
        })
}

/// Writes haproxy's config, with these worker slots in rotation.
pub fn write_haproxy_config(config: &Config, in_rotation: &[bool]) -> Result<()> {
    let haproxy = templates::haproxy(config, in_rotation)?;
    write(config, "haproxy.cfg", &haproxy)
}

fn write(config: &Config, name: &str, text: &str) -> Result<()> {
    rundir::write_file(&config.run_dir, name, text.as_bytes()).map_err(|e| {
        UpError::setup(format!(
            "writing {}: {e}",
            config.run_dir.join(name).display()
        ))
    })
}
