//! The C heap (glibc's malloc): tuned for a worker's pattern of buffers,
//! and handed back to the kernel when the worker goes idle.
//!
//! Every request builds and drops a few buffers the size of its page: the
//! body, the props V8 parses, the HTML, the answer (about 1 MB each for
//! the example's large page). By default glibc serves blocks over 128 KB
//! to 32 MB with fresh `mmap`s, or grows and then trims its arenas as they
//! are freed, so each request faults its buffers' pages in again and the
//! kernel zeroes them: 1,234 page faults per large request, measured.
//! [`tune`] keeps blocks up to 32 MB in the arenas and stops the automatic
//! trim (134-142 faults per request; the tier's large-batch throughput
//! +4-7 %, bench/README.md); what a burst of requests
//! left is given back by [`trim`] once the worker is idle
//! (render_loop.rs), so an idle worker is as small as before.

/// Blocks up to this size come from malloc's arenas, not from `mmap`
/// (glibc's largest allowed value on 64-bit).
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Free memory at the top of an arena is kept up to this much, instead of
/// being trimmed after every large free.
const TRIM_THRESHOLD: i32 = 256 << 20;

/// Sets the two thresholds. Call once, before the process starts threads.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before
    // any other thread allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Returns every free page of every arena to the kernel.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free memory back to the kernel; it
    // takes the allocator's locks like any malloc call.
    unsafe {
        libc::malloc_trim(0);
    }
}
