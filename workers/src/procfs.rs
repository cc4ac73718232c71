//! What the worker reads about itself from `/proc` (Linux).

/// Resident set size of this process, 0 where unavailable.
///
/// Reads `/proc/self/statm` (a few numbers) rather than `status` (a page of
/// text): it is read after requests and in every heartbeat.
pub fn rss_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
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
}
