//! The in-flight slate: a few bytes, in a file the supervisor handed over,
//! naming the request this worker is rendering right now.
//!
//! If the process dies mid-render (a crash, SIGKILL), the supervisor reads
//! the slate to learn which request was in flight and counts a strike
//! against it; a request that kills two workers is quarantined. The slate
//! lives in the page cache of a file descriptor the supervisor keeps open,
//! so it survives the process that wrote it; writing it costs one `pwrite`
//! per request, no fsync.

use std::fs::File;
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileExt;

/// How a slate reads when nothing is in flight.
pub const IDLE: &str = "00000000000000000000000000000000";

/// The slate of one worker; a no-op when the worker has none.
#[derive(Default)]
pub struct Slate {
    /// The inherited file, if any.
    file: Option<File>,
}

impl Slate {
    /// The slate at an inherited file descriptor.
    ///
    /// # Safety
    /// `fd` must be an open file this process owns (handed over by the
    /// supervisor as `--slate-fd`).
    pub unsafe fn from_fd(fd: i32) -> Slate {
        Slate {
            // SAFETY: the caller guarantees fd is an open file we own.
            file: Some(unsafe { File::from_raw_fd(fd) }),
        }
    }

    /// Marks the request whose body hashes to `hash` as in flight.
    pub fn mark(&self, hash: &str) {
        self.write(hash);
    }

    /// Nothing in flight.
    pub fn clear(&self) {
        self.write(IDLE);
    }

    fn write(&self, text: &str) {
        if let Some(f) = &self.file {
            // Best effort: a slate that cannot be written only costs the
            // supervisor its poison-request detection.
            let _ = f.write_at(text.as_bytes(), 0);
        }
    }
}

/// Reads a slate (the supervisor's side): the hash of the request that was
/// in flight, if any.
pub fn read(file: &File) -> Option<String> {
    let mut buf = [0u8; IDLE.len()];
    file.read_exact_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(&buf).ok()?;
    (text != IDLE && text.bytes().all(|b| b.is_ascii_hexdigit())).then(|| text.to_string())
}

/// Resets a slate to idle (the supervisor's side, after reading it).
pub fn reset(file: &File) {
    let _ = file.write_at(IDLE.as_bytes(), 0);
}

/// The hash a request is known by: its route and body, 128-bit xxh3 as hex.
pub fn request_hash(route: &str, body: &[u8]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(route.as_bytes());
    h.update(&[0]);
    h.update(body);
    format!("{:032x}", h.digest128())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_survive_the_writer_and_idle_reads_as_none() {
        let path = std::env::temp_dir().join(format!("ssrd-slate-{}", std::process::id()));
        let reader = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let writer = Slate {
            file: Some(reader.try_clone().unwrap()),
        };
        assert_eq!(read(&reader), None, "empty file");
        let hash = request_hash("/batch", b"{}");
        assert_eq!(hash.len(), 32);
        writer.mark(&hash);
        drop(writer);
        assert_eq!(read(&reader).as_deref(), Some(hash.as_str()));
        Slate {
            file: Some(reader.try_clone().unwrap()),
        }
        .clear();
        assert_eq!(read(&reader), None);
        assert_ne!(
            request_hash("/batch", b"{}"),
            request_hash("/render/A", b"{}")
        );
        let _ = std::fs::remove_file(path);
    }
}
