//! The run directory: rendered configs, the bundle store, pid and log
//! files. Root writes there, and nginx and haproxy read what is written, so
//! it must be private:
//!
//! - the default is per user and not guessable by others in a useful way:
//!   `$XDG_RUNTIME_DIR/ssrd`, `/run/ssrd` as root, else `/tmp/ssrd-<uid>`;
//! - it is created 0700; an existing one is refused unless it is a real
//!   directory (not a symlink), owned by the current user, and not writable
//!   by group or others;
//! - files are written to a fresh temporary name (`O_CREAT|O_EXCL|
//!   O_NOFOLLOW`) and renamed into place: a planted symlink is replaced,
//!   never followed.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Result, UpError};

/// Where the run dir is when none is given.
pub fn default_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("ssrd");
    }
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        PathBuf::from("/run/ssrd")
    } else {
        std::env::temp_dir().join(format!("ssrd-{uid}"))
    }
}

/// Creates the run dir (0700) or checks an existing one is safe to use.
pub fn prepare(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| UpError::setup(format!("creating {}: {e}", parent.display())))?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(UpError::setup(format!(
                "creating the run dir {}: {e}",
                dir.display()
            )))
        }
    }
    check(dir)
}

/// Refuses a run dir another user could tamper with.
pub fn check(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| UpError::setup(format!("run dir {}: {e}", dir.display())))?;
    let refuse = |why: String| {
        Err(UpError::setup(format!(
            "refusing the run dir {}: {why}; choose another --run-dir, or fix or remove this one",
            dir.display()
        )))
    };
    if meta.file_type().is_symlink() {
        return refuse("it is a symbolic link".into());
    }
    if !meta.is_dir() {
        return refuse("it is not a directory".into());
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return refuse(format!(
            "it is owned by uid {}, not by you (uid {me})",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return refuse(format!(
            "it is writable by group or others (mode {mode:o}); it must be 0700 or 0755"
        ));
    }
    Ok(())
}

/// Creates a subdirectory (0700) of the run dir, refusing a symlink there.
pub fn subdir(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    match DirBuilder::new().mode(0o700).create(&path) {
        Ok(()) => Ok(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => check(&path).map(|()| path),
        Err(e) => Err(UpError::setup(format!("creating {}: {e}", path.display()))),
    }
}

/// Writes `dir/name` without following a symlink planted there: a fresh
/// temporary file, then an atomic rename over whatever `name` was.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes));
    match written.and_then(|()| std::fs::rename(&tmp, &target)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// What `ssrd stop` must wait for: the running tier's drain and shutdown
/// timeout, written beside its pid file (`ssrd stop` runs with its own
/// options, which need not be the tier's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StopPlan {
    /// How long /health answers 503 before the tier stops accepting, s.
    pub drain_seconds: u64,
    /// How long in-flight requests may take after that, ms.
    pub shutdown_timeout_ms: u64,
}

/// The file [`StopPlan`] is kept in.
pub const STOP_PLAN: &str = "ssrd.stop.json";

/// Writes the running tier's [`StopPlan`].
pub fn write_stop_plan(dir: &Path, plan: StopPlan) -> std::io::Result<()> {
    let text = serde_json::to_string(&plan).unwrap_or_default();
    write_file(dir, STOP_PLAN, text.as_bytes())
}

/// The running tier's [`StopPlan`], if it wrote one.
pub fn read_stop_plan(dir: &Path) -> Option<StopPlan> {
    let text = std::fs::read_to_string(dir.join(STOP_PLAN)).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ssrd-rundir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn creates_private_and_refuses_shared_or_linked_dirs() {
        let d = tempdir("mode");
        prepare(&d).unwrap();
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare(&d).unwrap_err().context;
        assert!(err.contains("writable by group or others"), "{err}");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = tempdir("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        assert!(prepare(&link)
            .unwrap_err()
            .context
            .contains("symbolic link"));
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn writes_replace_planted_symlinks_instead_of_following_them() {
        let d = tempdir("write");
        prepare(&d).unwrap();
        let victim = d.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, d.join("nginx.conf")).unwrap();
        write_file(&d, "nginx.conf", b"config").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let meta = std::fs::symlink_metadata(d.join("nginx.conf")).unwrap();
        assert!(meta.is_file());
        assert_eq!(
            std::fs::read_to_string(d.join("nginx.conf")).unwrap(),
            "config"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
