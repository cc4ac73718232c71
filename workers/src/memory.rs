//! The isolate's memory limits, wherever JS puts memory:
//!
//! - the JS heap: capped by V8 (`heap_limit_bytes`); [`install_heap_guard`]
//!   turns V8's fatal out-of-memory into a failed job and a retired worker;
//! - ArrayBuffer backing stores (typed arrays, TextEncoder output, …): live
//!   outside the heap, so the isolate gets an allocator with a budget
//!   ([`buffer_allocator`]); past it, allocations fail and JS sees a
//!   RangeError instead of the process growing;
//! - resizable and growable buffers and WebAssembly memories: V8 reserves
//!   and commits these itself, so js/offheap_budget.js charges each to the
//!   same budget before V8 makes it ([`op_ssrd_offheap_charge`]) and refunds
//!   it once it is garbage; one memory is also capped in pages by a V8 flag;
//! - WebAssembly tables live on the heap, one capped in entries by a V8
//!   flag ([`v8_flags`]) so growing one never asks V8 for more than it can
//!   hand back as a failed job;
//! - everything else (memory grown from inside Wasm code, V8's own): the
//!   worker's RSS limit, watched while a render runs (memory_guard.rs).
//!
//! Strings live on the heap; a render's answer is also capped in size
//! (js_runtime.rs). What is left (V8's own overhead, compiled code) is
//! bounded by the worker's RSS limit, checked after every request.

use std::cell::Cell;
use std::ffi::c_void;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use deno_core::v8;
use deno_core::{op2, JsRuntime, OpState};

/// Allocations this small always succeed, budget or not: V8 aborts the
/// process when some internal small allocations fail.
const ALWAYS_ALLOWED: usize = 4096;

/// Bytes of ArrayBuffer memory in use, against a limit.
pub struct BufferBudget {
    /// Bytes allocated and not yet freed.
    used: AtomicUsize,
    /// The most that may be in use.
    limit: usize,
    /// Set when an allocation was refused, until the heap guard reads it:
    /// V8 follows a refused allocation with a last-resort collection that
    /// calls the near-heap-limit hook, which must not take that for heap
    /// exhaustion.
    refused: AtomicBool,
}

impl BufferBudget {
    fn reserve(&self, len: usize) -> bool {
        let before = self.used.fetch_add(len, Ordering::Relaxed);
        if len > ALWAYS_ALLOWED && before + len > self.limit {
            self.used.fetch_sub(len, Ordering::Relaxed);
            self.refused.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Whether an allocation was refused since the last call.
    pub fn take_refused(&self) -> bool {
        self.refused.swap(false, Ordering::Relaxed)
    }

    fn release(&self, len: usize) {
        self.used.fetch_sub(len, Ordering::Relaxed);
    }

    /// Bytes in use now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

unsafe extern "C" fn allocate(budget: &BufferBudget, len: usize) -> *mut c_void {
    if !budget.reserve(len) {
        return std::ptr::null_mut();
    }
    // SAFETY: calloc of a non-zero size; V8 frees it through `free` below.
    let ptr = unsafe { libc::calloc(len.max(1), 1) };
    if ptr.is_null() {
        budget.release(len);
    }
    ptr
}

unsafe extern "C" fn allocate_uninitialized(budget: &BufferBudget, len: usize) -> *mut c_void {
    if !budget.reserve(len) {
        return std::ptr::null_mut();
    }
    // SAFETY: as above.
    let ptr = unsafe { libc::malloc(len.max(1)) };
    if ptr.is_null() {
        budget.release(len);
    }
    ptr
}

unsafe extern "C" fn free(budget: &BufferBudget, data: *mut c_void, len: usize) {
    // SAFETY: `data` came from calloc/malloc above.
    unsafe { libc::free(data) };
    budget.release(len);
}

unsafe extern "C" fn drop_budget(budget: *const BufferBudget) {
    // SAFETY: the allocator owns one reference, created in buffer_allocator.
    drop(unsafe { Arc::from_raw(budget) });
}

static VTABLE: v8::RustAllocatorVtable<BufferBudget> = v8::RustAllocatorVtable {
    allocate,
    allocate_uninitialized,
    free,
    drop: drop_budget,
};

/// An ArrayBuffer allocator that refuses to go past `limit` bytes, and the
/// budget it counts against.
pub fn buffer_allocator(limit: usize) -> (v8::UniqueRef<v8::Allocator>, Arc<BufferBudget>) {
    let budget = Arc::new(BufferBudget {
        used: AtomicUsize::new(0),
        limit,
        refused: AtomicBool::new(false),
    });
    let handle = Arc::into_raw(Arc::clone(&budget));
    // SAFETY: `handle` is a live Arc the allocator releases in `drop_budget`;
    // the vtable's functions match its type.
    let allocator = unsafe { v8::new_rust_allocator(handle, &VTABLE) };
    (allocator, budget)
}

/// Charges `bytes` of memory V8 is about to reserve outside the heap (a
/// resizable buffer, a WebAssembly memory) to the isolate's off-heap
/// budget: false when it would pass it (js/offheap_budget.js then throws a
/// RangeError). Called only from there, whose ops bundle code cannot reach.
#[op2(fast)]
pub fn op_ssrd_offheap_charge(state: &mut OpState, bytes: f64) -> bool {
    match state.try_borrow::<Arc<BufferBudget>>() {
        // Huge or odd numbers are refused rather than cast.
        Some(budget) => bytes.is_finite() && bytes >= 0.0 && budget.reserve(bytes as usize),
        // Building a snapshot: no budget yet.
        None => true,
    }
}

/// Gives back what [`op_ssrd_offheap_charge`] took, once its object is
/// garbage.
#[op2(fast)]
pub fn op_ssrd_offheap_release(state: &mut OpState, bytes: f64) {
    if let Some(budget) = state.try_borrow::<Arc<BufferBudget>>() {
        if bytes.is_finite() && bytes >= 0.0 {
            budget.release(bytes as usize);
        }
    }
}

/// Puts the budget where the ops above find it.
pub fn share_budget(runtime: &mut JsRuntime, budget: Arc<BufferBudget>) {
    runtime.op_state().borrow_mut().put(budget);
}

/// The most entries one WebAssembly table may hold for a heap limit of
/// `heap_limit_bytes`: an eighth of the heap (8 bytes an entry), so a table
/// that grows is a series of allocations the near-heap-limit hook can turn
/// into a failed job, never one V8 must abort the process over.
pub fn wasm_max_table_entries(heap_limit_bytes: usize) -> usize {
    (heap_limit_bytes / 64).max(1024)
}

/// V8 flags that bound memory for a heap limit of `heap_limit_bytes`:
/// WebAssembly memories get at most as many 64 KiB pages, tables at most
/// [`wasm_max_table_entries`], and compiled Wasm code at most a quarter of
/// it.
pub fn v8_flags(heap_limit_bytes: usize) -> String {
    format!(
        "--wasm-max-mem-pages={} --wasm-max-table-size={} --wasm-max-committed-code-mb={}",
        (heap_limit_bytes >> 16).max(1),
        wasm_max_table_entries(heap_limit_bytes),
        (heap_limit_bytes >> 22).max(16),
    )
}

/// When V8 nears the heap limit it would abort the whole process. Instead:
/// flag the isolate as exhausted, terminate the running JS, and grant some
/// headroom so the termination can unwind. The job is answered as failed and
/// the worker exits afterwards (see `exit_code::HEAP_LIMIT`).
///
/// V8 also calls this hook from its last-resort collection after the
/// buffer budget refused an ArrayBuffer allocation: that is no heap
/// exhaustion; the allocation then fails with a RangeError in JS.
pub fn install_heap_guard(
    runtime: &mut JsRuntime,
    exhausted: Rc<Cell<bool>>,
    buffers: Arc<BufferBudget>,
) {
    let handle = runtime.v8_isolate().thread_safe_handle();
    runtime.add_near_heap_limit_callback(move |current, _initial| {
        if buffers.take_refused() {
            return current;
        }
        exhausted.set(true);
        handle.terminate_execution();
        current + (current / 2).max(64 << 20)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_large_allocations_past_its_limit_but_never_small_ones() {
        let b = BufferBudget {
            used: AtomicUsize::new(0),
            limit: 10_000,
            refused: AtomicBool::new(false),
        };
        assert!(b.reserve(8000));
        assert!(!b.reserve(8000), "past the limit");
        assert!(b.take_refused() && !b.take_refused());
        assert!(b.reserve(100), "small ones always pass");
        assert_eq!(b.used(), 8100);
        b.release(8000);
        assert!(b.reserve(8000));
    }
}
