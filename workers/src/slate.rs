//! The in-flight slate: a few bytes, in a file the supervisor handed over,
//! naming the request this worker is rendering right now: its hash (route
//! and body), its trace id (or `-`) and its request id.
//!
//! If the process dies mid-render (a crash, SIGKILL), the supervisor reads
//! the slate to learn which request was in flight. The same request (same
//! id: nginx's retry) in flight at two deaths is quarantined by its hash. The slate
//! lives in the page cache of a file descriptor the supervisor keeps open,
//! so it survives the process that wrote it; writing it costs one `pwrite`
//! per request, no fsync.

use std::fs::File;
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileExt;

/// A slate's size: a 32-digit hash, a space, a 32-digit trace id or `-`, a
/// space, the request id (at most 128 bytes, see http/handlers.rs), padded
/// with spaces, a newline.
const SIZE: usize = 256;
/// How a slate starts when nothing is in flight.
const IDLE: &str = "00000000000000000000000000000000";

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

    /// Marks the request `id`, whose route and body hash to `hash`, as in
    /// flight.
    pub fn mark(&self, hash: &str, id: &str, trace_id: Option<&str>) {
        if let Some(f) = &self.file {
            // Best effort: a slate that cannot be written only costs the
            // supervisor its poison-request detection.
            let _ = f.write_at(&record(hash, trace_id.unwrap_or("-"), id), 0);
        }
    }

    /// Nothing in flight.
    pub fn clear(&self) {
        if let Some(f) = &self.file {
            reset(f);
        }
    }
}

fn record(hash: &str, trace: &str, id: &str) -> [u8; SIZE] {
    let mut buf = [b' '; SIZE];
    let text = format!("{hash} {trace} {id}");
    let n = text.len().min(SIZE - 1);
    buf[..n].copy_from_slice(&text.as_bytes()[..n]);
    buf[SIZE - 1] = b'\n';
    buf
}

/// What a slate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The request's hash (route and body).
    pub hash: String,
    /// Its request id (X-Request-Id; the same on nginx's retry).
    pub id: String,
    /// Its trace, when tracing was on.
    pub trace_id: Option<String>,
}

/// Reads a slate (the supervisor's side): the request that was in flight.
pub fn read(file: &File) -> Option<InFlight> {
    let mut buf = [0u8; SIZE];
    file.read_exact_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(&buf).ok()?;
    let (hash, rest) = text.trim_end().split_once(' ')?;
    let (trace, id) = rest.split_once(' ')?;
    let valid = hash.len() == IDLE.len() && hash.bytes().all(|b| b.is_ascii_hexdigit());
    let trace_id = (trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| trace.to_string());
    (valid && hash != IDLE).then(|| InFlight {
        hash: hash.to_string(),
        id: id.to_string(),
        trace_id,
    })
}

/// Resets a slate to idle (also the supervisor's side, after reading it).
pub fn reset(file: &File) {
    let _ = file.write_at(&record(IDLE, "-", "-"), 0);
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
        writer.mark(&hash, "req-1", None);
        assert_eq!(
            read(&reader),
            Some(InFlight {
                hash: hash.clone(),
                id: "req-1".into(),
                trace_id: None,
            })
        );
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        writer.mark(&hash, "req-2", Some(trace));
        drop(writer);
        assert_eq!(
            read(&reader),
            Some(InFlight {
                hash: hash.clone(),
                id: "req-2".into(),
                trace_id: Some(trace.into()),
            })
        );
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
