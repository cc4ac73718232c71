//! V8 startup snapshots of the evaluated bundle.
//!
//! Evaluating a bundle (React plus the app, a few hundred KB of JS) is most of
//! a worker's boot time. A snapshot is the V8 heap right after evaluation:
//! starting from it skips parsing and running the bundle's top level.
//!
//! A snapshot file is a small header followed by V8's blob. The header holds
//! a key derived from the bundle source, the host script and the ssrd and
//! deno_core versions, so a file built from another bundle or another binary
//! is never loaded (V8 aborts the process on a mismatched blob); it is
//! rebuilt instead. Files are written to a temporary name and renamed, so
//! workers starting together never read a half-written file.

use std::path::Path;

use deno_core::RuntimeOptions;

use crate::bundle::{evaluate_bundle, Bundle};
use crate::error::{Error, ErrorKind, Result};
use crate::{sandbox, web_apis};

const MAGIC: &[u8; 8] = b"SSRDSNP1";
const HEADER_LEN: usize = 16;

/// Where a worker's snapshot came from, for its ready line and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Read from a file whose key matched the bundle.
    Loaded,
    /// Built now (no file, or a stale one) and written for the next worker.
    Built,
}

/// Builds a snapshot of `bundle` evaluated in a fresh isolate.
pub fn create(bundle: &Bundle) -> Result<Vec<u8>> {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting a tokio runtime", e))?;
    let _enter = tokio.enter();
    let mut runtime = deno_core::JsRuntimeForSnapshot::try_new(RuntimeOptions {
        extensions: web_apis::extensions(),
        ..Default::default()
    })
    .map_err(|e| Error::new(ErrorKind::Snapshot, format!("starting V8: {e}")))?;
    sandbox::seal(&mut runtime)?;
    evaluate_bundle(&mut runtime, bundle)?;
    let problem = {
        deno_core::scope!(scope, &mut runtime);
        match sandbox::call_host(scope, "checkContract") {
            Ok(v) => v.to_rust_string_lossy(scope),
            Err(e) => e,
        }
    };
    if !problem.is_empty() {
        return Err(Error::bundle(format!("{}: {problem}", bundle.name)));
    }
    // What the host loads lazily goes in now: an isolate started from the
    // snapshot cannot load deno_web's scripts.
    {
        deno_core::scope!(scope, &mut runtime);
        sandbox::call_host(scope, "beforeSnapshot")
            .map_err(|e| Error::new(ErrorKind::Snapshot, format!("preparing the snapshot: {e}")))?;
    }
    // The sealed internals stay in their private slots in the snapshot;
    // sandbox::restore_for_startup hands deno_core `Deno.core` at start.
    Ok(runtime.snapshot().into_vec())
}

/// Writes `blob` for `bundle` to `path` atomically.
pub fn write(path: &Path, bundle: &Bundle, blob: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut data = Vec::with_capacity(HEADER_LEN + blob.len());
    data.extend_from_slice(MAGIC);
    data.extend_from_slice(&key(bundle).to_le_bytes());
    data.extend_from_slice(blob);
    std::fs::write(&tmp, &data).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })
}

/// Reads the snapshot at `path` if it was built from this bundle by this
/// binary; `Ok(None)` when it is missing or stale.
pub fn read(path: &Path, bundle: &Bundle) -> Result<Option<Vec<u8>>> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    if data.len() <= HEADER_LEN || &data[..8] != MAGIC || data[8..16] != key(bundle).to_le_bytes() {
        return Ok(None);
    }
    Ok(Some(data[HEADER_LEN..].to_vec()))
}

/// The snapshot for `bundle` at `path`: read if current, else built and
/// written. The blob is leaked because V8 needs it for the process's life.
pub fn load_or_build(path: &Path, bundle: &Bundle) -> Result<(&'static [u8], Origin)> {
    let (blob, origin) = match read(path, bundle)? {
        Some(blob) => (blob, Origin::Loaded),
        None => {
            let blob = create(bundle)?;
            write(path, bundle, &blob)?;
            (blob, Origin::Built)
        }
    };
    Ok((Box::leak(blob.into_boxed_slice()), origin))
}

/// Identifies what a snapshot was built from: the bundle and its name, the host scripts
/// baked into it, and the binary's versions.
fn key(bundle: &Bundle) -> u64 {
    let mut h = Fnv1a::new();
    h.write(bundle.code.as_bytes());
    // The script name is baked into the snapshot and is what stacks show:
    // the source map applies to frames under this name (stack_map.rs).
    h.write(bundle.name.as_bytes());
    for source in web_apis::HOST_SOURCES {
        h.write(source.as_bytes());
    }
    h.write(env!("CARGO_PKG_VERSION").as_bytes());
    h.write(deno_core::v8::VERSION_STRING.as_bytes());
    h.0
}

/// FNV-1a, 64 bit: stable across builds and platforms, unlike std's hasher.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // Separate fields so ("ab","c") and ("a","bc") differ.
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3) ^ 0xff;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(code: &str) -> Bundle {
        Bundle::new("test.js", code)
    }

    #[test]
    fn stale_or_foreign_files_are_not_loaded() {
        let dir = std::env::temp_dir().join(format!("ssrd-snap-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.snap");
        let a = bundle("globalThis.ssrd = {render: () => 'a'}");
        let b = bundle("globalThis.ssrd = {render: () => 'b'}");
        write(&path, &a, b"not really a blob").unwrap();
        assert_eq!(
            read(&path, &a).unwrap().as_deref(),
            Some(&b"not really a blob"[..])
        );
        assert_eq!(read(&path, &b).unwrap(), None, "another bundle's snapshot");
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(
            read(&path, &a).unwrap(),
            None,
            "a file that is not a snapshot"
        );
        assert_eq!(read(&dir.join("missing.snap"), &a).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
