//! What the worker reads about itself from `/proc` (Linux).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

/// `/proc/self/statm`, opened once: it is read after every request and in
/// every heartbeat, and a read at offset 0 gives the current figures
/// without another open and close.
static STATM: OnceLock<File> = OnceLock::new();

/// The open `statm`; a failed open (out of descriptors, say) is tried again
/// on the next read instead of turning RSS off for good.
fn statm() -> Option<&'static File> {
    if let Some(file) = STATM.get() {
        return Some(file);
    }
    let file = File::open("/proc/self/statm").ok()?;
    Some(STATM.get_or_init(|| file))
}

/// Resident set size of this process, 0 where unavailable.
///
/// Reads `/proc/self/statm` (a few numbers) rather than `status` (a page of
/// text).
pub fn rss_bytes() -> u64 {
    let Some(file) = statm() else {
        return 0;
    };
    // Seven numbers of at most 20 digits each, with their separators.
    let mut buf = [0u8; 160];
    let Ok(n) = file.read_at(&mut buf, 0) else {
        return 0;
    };
    let pages: u64 = std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|text| text.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rss_is_plausible() {
        let rss = super::rss_bytes();
        assert!(rss > 1 << 20 && rss < 1 << 40, "{rss}");
    }

    /// The file stays open; each read must still give the figure of now.
    #[test]
    fn rss_follows_memory_touched_after_the_first_read() {
        let before = super::rss_bytes();
        let grown = vec![1u8; 64 << 20];
        let after = super::rss_bytes();
        assert!(
            after >= before + (48 << 20),
            "{before} -> {after} with 64 MiB touched"
        );
        drop(std::hint::black_box(grown));
    }
}
