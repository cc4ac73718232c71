// Over 450 lines: one type, the Engine; its render call, promise pump and host calls share the isolate's private state.
//! The JS runtime: one V8 isolate (deno_core) holding the evaluated bundle.
//!
//! `Engine` owns the isolate, a current-thread tokio runtime for V8's delayed
//! tasks and async renders, the watchdog that enforces per-job deadlines, and
//! the near-heap-limit hook that turns heap exhaustion into a failed job
//! instead of V8's fatal out-of-memory abort. It is not `Send`: it lives on
//! the render thread for its whole life.
//!
//! What the glue hands back is turned into a job's outcome in answer.rs.
//!
//! The Rust side knows nothing about React. It calls the host glue that
//! `js/host.js` hands over; `js/render_glue.js` calls
//! `globalThis.ssrd.render(name, props, context)`.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deno_core::v8;
use deno_core::{JsRuntime, PollEventLoopOptions, RuntimeOptions};

use crate::bundle::{evaluate_bundle, Bundle};
use crate::error::{Error, ErrorKind, Result};
use crate::job::{Cause, Failure, JobError, Rendered};
use crate::memory_guard::MemoryGuard;
use crate::stack_map::StackMap;
use crate::watchdog::{Armed, Canceller, Terminate, Watchdog};
use crate::{answer, memory, sandbox, web_apis};

/// The least time cleaning up after a job (cancelling its timers, closing
/// its message ports, running what that queues) is given, however much of
/// the job's own deadline is left. Benign clean-up takes microseconds of
/// CPU; this is for a process that the scheduler keeps waiting.
const CLEAN_UP_MIN: Duration = Duration::from_millis(250);

/// How to start an isolate.
#[derive(Clone, Copy)]
pub struct EngineOptions {
    /// V8's old-space limit for this isolate, in bytes.
    pub heap_limit_bytes: usize,
    /// V8's young-generation semi-space, in bytes. Rendering allocates a lot
    /// of short-lived garbage; with the small default V8 derives from a
    /// 256 MB heap it scavenges so often that SearchResults renders ~30 %
    /// slower (bench/README.md).
    pub semi_space_bytes: usize,
    /// A startup snapshot that already holds the evaluated bundle; `None`
    /// evaluates the bundle from source.
    pub snapshot: Option<&'static [u8]>,
    /// The largest answer (HTML plus meta) one job may return, in bytes.
    pub max_answer_bytes: usize,
    /// Resident memory past which a running render is stopped and the
    /// worker retires (memory_guard.rs); 0 = not watched.
    pub memory_guard_bytes: u64,
}

/// V8 heap figures, read after each request.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct HeapStats {
    /// Bytes of live JS objects.
    pub used: usize,
    /// Bytes V8 has reserved for the heap.
    pub total: usize,
    /// The configured limit.
    pub limit: usize,
    /// Bytes held outside the heap by JS objects (ArrayBuffers, strings).
    pub external: usize,
    /// ArrayBuffer memory counted against its budget (the heap limit).
    pub buffers: usize,
}

/// The render glue's answer to one call, before any promise is awaited.
enum Step {
    Done(std::result::Result<Rendered, JobError>),
    Pending(v8::Global<v8::Value>),
    Terminated,
    TimedOut,
}

pub struct Engine {
    // Field order is drop order: V8 handles before the isolate, the isolate
    // before the tokio runtime it posts tasks to.
    /// The host glue's `renderJob(name, propsJson, metadataJson)`.
    render_job: v8::Global<v8::Function>,
    /// The host glue's `afterJob()`, run after every job (looked up once).
    after_job: v8::Global<v8::Function>,
    /// The host glue object (`warmupJobs`, `checkContract`, `onStart`).
    host: v8::Global<v8::Object>,
    /// The isolate with the bundle evaluated in it.
    runtime: JsRuntime,
    /// Ends renders that run past their deadline.
    watchdog: Watchdog,
    /// The generation of each render the watchdog ended, so an async
    /// render waiting on a timer stops at once instead of at its deadline.
    fired: tokio::sync::watch::Receiver<u64>,
    /// The request the next renders are for (see `Watchdog::arm`).
    tag: u64,
    /// Set by the near-heap-limit hook; once set the isolate must be retired.
    heap_exhausted: Rc<Cell<bool>>,
    /// The configured heap limit, for stats.
    heap_limit: usize,
    /// ArrayBuffer memory in use, against its budget.
    buffers: Arc<memory::BufferBudget>,
    /// The largest answer one job may return.
    max_answer_bytes: usize,
    /// The bundle asked for its /batch HTML in Hypernova's placement
    /// markup (`globalThis.ssrd.markup = "placement"`).
    placement: bool,
    /// Watches resident memory while a render runs, if a limit is set.
    memory_guard: Option<MemoryGuard>,
    /// Set once a render passed the memory guard's limit: the worker
    /// must retire.
    memory_exceeded: bool,
    /// Maps a failed job's stack to the bundle's original sources.
    stacks: Arc<StackMap>,
    /// Drives V8's delayed tasks, timers and async renders on this thread.
    tokio: tokio::runtime::Runtime,
}

impl Engine {
    /// Starts an isolate: from `options.snapshot` if given (the bundle is
    /// already inside), otherwise by evaluating `bundle`.
    pub fn new(bundle: &Bundle, options: EngineOptions) -> Result<Engine> {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the render thread's tokio runtime", e))?;
        // V8 posts delayed tasks through the current tokio runtime: the
        // JsRuntime must be created inside its context.
        let _enter = tokio.enter();
        // The young generation is three semi-spaces' worth (two semi-spaces
        // plus the new large-object space).
        // ArrayBuffer memory counts against a budget as large as the heap.
        let (allocator, buffers) = memory::buffer_allocator(options.heap_limit_bytes);
        let create_params = v8::CreateParams::default()
            .heap_limits(0, options.heap_limit_bytes)
            .set_max_young_generation_size_in_bytes(3 * options.semi_space_bytes)
            .array_buffer_allocator(allocator);
        let mut runtime = JsRuntime::try_new(RuntimeOptions {
            extensions: web_apis::extensions(),
            startup_snapshot: options.snapshot,
            create_params: Some(create_params),
            ..Default::default()
        })
        .map_err(|e| Error::bundle(format!("starting V8: {e}")))?;

        memory::share_budget(&mut runtime, Arc::clone(&buffers));
        let heap_exhausted = Rc::new(Cell::new(false));
        memory::install_heap_guard(
            &mut runtime,
            Rc::clone(&heap_exhausted),
            Arc::clone(&buffers),
        );
        let (fired_tx, fired) = tokio::sync::watch::channel(0);
        let watchdog = Watchdog::new(Stopper {
            isolate: runtime.v8_isolate().thread_safe_handle(),
            fired: fired_tx,
        });

        // The host's internals leave the bundle's reach before it runs (and
        // again after a snapshot start, which needed them for a moment).
        sandbox::seal(&mut runtime)?;
        if options.snapshot.is_none() {
            evaluate_bundle(&mut runtime, bundle)?;
        }
        // The language's own objects are frozen once the bundle is in (not
        // in the snapshot: V8 adds properties to some of them while it
        // starts a context from one).
        {
            deno_core::scope!(scope, &mut runtime);
            sandbox::call_host(scope, "lockdown").map_err(|e| {
                Error::bundle(format!(
                    "{}: freezing the built-in objects: {e}",
                    bundle.name
                ))
            })?;
        }
        let (host, render_job, after_job) = {
            deno_core::scope!(scope, &mut runtime);
            let host = sandbox::host(scope).ok_or_else(|| {
                Error::new(
                    ErrorKind::Internal,
                    "the render glue is missing from the isolate",
                )
            })?;
            let render_job = get_function(scope, host, "renderJob")
                .ok_or_else(|| Error::bundle("host glue has no renderJob"))?;
            let after_job = get_function(scope, host, "afterJob")
                .ok_or_else(|| Error::bundle("host glue has no afterJob"))?;
            (v8::Global::new(scope, host), render_job, after_job)
        };
        let memory_guard = (options.memory_guard_bytes > 0).then(|| {
            let canceller = watchdog.canceller();
            MemoryGuard::new(
                options.memory_guard_bytes,
                crate::procfs::rss_bytes,
                move || canceller.cancel_current(),
            )
        });
        let mut engine = Engine {
            render_job,
            after_job,
            host,
            runtime,
            watchdog,
            fired,
            tag: 0,
            heap_exhausted,
            heap_limit: options.heap_limit_bytes,
            buffers,
            max_answer_bytes: options.max_answer_bytes,
            placement: false,
            memory_guard,
            memory_exceeded: false,
            stacks: Arc::clone(&bundle.stacks),
            tokio,
        };
        let problem = engine.call_host_string("checkContract")?;
        if !problem.is_empty() {
            return Err(Error::bundle(format!("{}: {problem}", bundle.name)));
        }
        engine.placement = engine.call_host_string("markupMode")? == "placement";
        engine.call_host_string("onStart")?;
        Ok(engine)
    }

    /// Renders one job within `timeout`. Never panics on anything the bundle
    /// does: throws, runaway loops, heap exhaustion and never-settling
    /// promises all come back as a `JobError`.
    pub fn render(
        &mut self,
        name: &str,
        props: &str,
        metadata: Option<&str>,
        timeout: Duration,
    ) -> std::result::Result<Rendered, JobError> {
        if self.heap_exhausted.get() {
            return Err(heap_error());
        }
        if self.memory_exceeded {
            return Err(Failure::MemoryLimitExceeded
                .error("not rendered: an earlier job took the worker past its memory limit"));
        }
        let _enter = self.tokio.enter();
        let started = Instant::now();
        // A refusal left over from an earlier job must not hide a real
        // heap exhaustion in this one.
        self.buffers.take_refused();
        if let Some(guard) = &self.memory_guard {
            guard.begin();
        }
        let armed = self.watchdog.arm(timeout, self.tag);
        let mut step = self.call_glue(name, props, metadata);
        if let Step::Pending(promise) = step {
            let remaining = timeout.saturating_sub(started.elapsed());
            step = self.await_promise(promise, remaining, &armed);
        }
        // Microtasks the job queued run now, within its deadline (or are
        // dropped when the watchdog ends them): never in a later job.
        if !self.runtime.v8_isolate().is_execution_terminating() {
            self.runtime.v8_isolate().perform_microtask_checkpoint();
        }
        let mut fired = self.watchdog.disarm(armed);
        if fired || self.runtime.v8_isolate().is_execution_terminating() {
            self.runtime.v8_isolate().cancel_terminate_execution();
        }
        // Timers and channels the job created are cancelled within what is
        // left of the job's deadline (at least CLEAN_UP_MIN: closing a port
        // can run the bundle's handlers); overrunning it is the job's
        // doing too.
        let left = timeout.saturating_sub(started.elapsed()).max(CLEAN_UP_MIN);
        let cleanup_fired = self.clean_up_after_job(left);
        if self.memory_guard.as_ref().is_some_and(|g| g.end()) {
            self.memory_exceeded = true;
        }
        if self.heap_exhausted.get() {
            return Err(heap_error());
        }
        if self.memory_exceeded {
            return Err(Failure::MemoryLimitExceeded.error(format!(
                "the render took the worker's resident memory past {} MiB (memory outside the JS \
                 heap); the worker will be replaced",
                self.memory_guard_limit() >> 20
            )));
        }
        if cleanup_fired && !fired {
            return Err(Failure::RenderTimeout.error(format!(
                "the render's leftover work (timers, microtasks, message handlers) ran past the \
                 job's {} ms limit and was stopped",
                timeout.as_millis()
            )));
        }
        fired |= cleanup_fired;
        match step {
            _ if fired => Err(timeout_error(timeout)),
            // Only a failed job pays for the source map (parsed on the
            // first one).
            Step::Done(result) => result.map_err(|e| self.stacks.map_error(e)),
            Step::TimedOut => Err(timeout_error(timeout)),
            Step::Terminated | Step::Pending(_) => {
                Err(Failure::InternalError.error("the render was terminated for no known reason"))
            }
        }
    }

    /// Runs the glue's `afterJob` and the microtasks it leaves; true if the
    /// watchdog had to end them.
    fn clean_up_after_job(&mut self, within: Duration) -> bool {
        let armed = self.watchdog.arm(within, self.tag);
        {
            deno_core::scope!(scope, &mut self.runtime);
            v8::tc_scope!(let tc, scope);
            let f = v8::Local::new(tc, &self.after_job);
            let recv = v8::undefined(tc).into();
            // What it throws (or being ended) changes nothing: the job's
            // answer is in, and the watchdog's verdict is read below.
            let _ = f.call(tc, recv, &[]);
        }
        if !self.runtime.v8_isolate().is_execution_terminating() {
            self.runtime.v8_isolate().perform_microtask_checkpoint();
        }
        let fired = self.watchdog.disarm(armed);
        if fired || self.runtime.v8_isolate().is_execution_terminating() {
            self.runtime.v8_isolate().cancel_terminate_execution();
        }
        fired
    }

    /// Tags the renders that follow as being for request `tag`, so a
    /// [`Canceller`] for that tag can end them (and only them).
    pub fn set_request_tag(&mut self, tag: u64) {
        self.tag = tag;
    }

    /// Ends the renders of a request from another thread.
    pub fn canceller(&self) -> Canceller {
        self.watchdog.canceller()
    }

    /// Runs a future on the render thread's tokio runtime (the one V8's
    /// tasks are posted to), e.g. to wait for the next request with a timeout.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.tokio.block_on(future)
    }

    /// True when the bundle asked for its /batch HTML in Hypernova's
    /// placement markup (README, "The bundle contract").
    pub fn wants_placement(&self) -> bool {
        self.placement
    }

    /// True once a render took the process past the memory guard's limit:
    /// it answered the job that did it, and must now be retired.
    pub fn memory_exceeded(&self) -> bool {
        self.memory_exceeded
    }

    fn memory_guard_limit(&self) -> u64 {
        self.memory_guard.as_ref().map(|g| g.limit()).unwrap_or(0)
    }

    /// True once the isolate came near its heap limit: it answered the job
    /// that did it, and must now be retired (the worker exits).
    pub fn heap_exhausted(&self) -> bool {
        self.heap_exhausted.get()
    }

    /// Gives back what the last renders left behind, for a worker going
    /// idle: a full collection of the JS heap (after which V8 shrinks its
    /// young generation and frees empty pages), then the C heap's free
    /// pages back to the kernel. About 10 ms on the example bundle.
    pub fn release_memory(&mut self) {
        let _enter = self.tokio.enter();
        self.runtime.v8_isolate().low_memory_notification();
        crate::malloc::trim();
    }

    /// The warm-up jobs the bundle declared, as (name, props JSON) pairs.
    pub fn warmup_jobs(&mut self) -> Result<Vec<(String, String)>> {
        let value = self.call_host("warmupJobs")?;
        deno_core::scope!(scope, &mut self.runtime);
        let value = v8::Local::new(scope, value);
        deno_core::serde_v8::from_v8::<Vec<(String, String)>>(scope, value)
            .map_err(|e| Error::bundle(format!("globalThis.ssrd.warmup: {e}")))
    }

    /// The components the bundle declared pure (`globalThis.ssrd.cache`),
    /// with their bounds; checked with the rest of the contract, so a
    /// failure here means the host glue itself misbehaved (none cached).
    pub fn cache_policies(&mut self) -> Vec<(String, crate::render::CachePolicy)> {
        match self.read_cache_policies() {
            Ok(list) => list
                .into_iter()
                .map(|(name, max_entries, ttl_ms)| {
                    let policy = crate::render::CachePolicy {
                        max_entries: usize::try_from(max_entries).unwrap_or(usize::MAX),
                        ttl: Duration::from_millis(ttl_ms),
                    };
                    (name, policy)
                })
                .collect(),
            Err(e) => {
                crate::log::error(
                    "cannot read the bundle's cache declaration; caching nothing",
                    serde_json::json!({"error": e.to_string()}),
                );
                Vec::new()
            }
        }
    }

    fn read_cache_policies(&mut self) -> Result<Vec<(String, u64, u64)>> {
        let value = self.call_host("cachePolicies")?;
        deno_core::scope!(scope, &mut self.runtime);
        let value = v8::Local::new(scope, value);
        deno_core::serde_v8::from_v8::<Vec<(String, u64, u64)>>(scope, value)
            .map_err(|e| Error::bundle(format!("globalThis.ssrd.cache: {e}")))
    }

    pub fn heap_stats(&mut self) -> HeapStats {
        let s = self.runtime.v8_isolate().get_heap_statistics();
        HeapStats {
            used: s.used_heap_size(),
            total: s.total_heap_size(),
            limit: self.heap_limit,
            external: s.external_memory(),
            buffers: self.buffers.used(),
        }
    }

    /// True once the JS heap holds more than its limit (a huge string can
    /// land there without tripping V8's near-limit hook): the worker must
    /// retire before it serves anyone else.
    pub fn heap_over_limit(&mut self) -> bool {
        self.runtime
            .v8_isolate()
            .get_heap_statistics()
            .used_heap_size()
            > self.heap_limit
    }

    fn call_glue(&mut self, name: &str, props: &str, metadata: Option<&str>) -> Step {
        deno_core::scope!(scope, &mut self.runtime);
        v8::tc_scope!(let tc, scope);
        let (Some(name_v), Some(props_v)) = (v8::String::new(tc, name), v8::String::new(tc, props))
        else {
            return Step::Done(Err(
                Failure::BadRequest.error("name or props too large for V8")
            ));
        };
        let meta_v: v8::Local<v8::Value> = match metadata.map(|m| v8::String::new(tc, m)) {
            Some(Some(m)) => m.into(),
            _ => v8::undefined(tc).into(),
        };
        let f = v8::Local::new(tc, &self.render_job);
        let recv = v8::undefined(tc).into();
        match f.call(tc, recv, &[name_v.into(), props_v.into(), meta_v]) {
            Some(v) if v.is_promise() => Step::Pending(v8::Global::new(tc, v)),
            Some(v) => Step::Done(answer::read(tc, v, self.max_answer_bytes)),
            None if tc.has_terminated() || tc.is_execution_terminating() => Step::Terminated,
            // The glue catches everything the bundle throws; an exception
            // here is the host's own bug. Only a string is read (turning an
            // object into text could run the bundle's code).
            None => {
                let msg = tc
                    .exception()
                    .filter(|e| e.is_string())
                    .map(|e| e.to_rust_string_lossy(tc))
                    .unwrap_or_else(|| "an exception".into());
                Step::Done(Err(Failure::InternalError.error(format!(
                    "render glue threw: {}",
                    crate::job::clip(&msg, 1024)
                ))))
            }
        }
    }

    fn await_promise(
        &mut self,
        promise: v8::Global<v8::Value>,
        remaining: Duration,
        armed: &Armed,
    ) -> Step {
        let max_answer_bytes = self.max_answer_bytes;
        let runtime = &mut self.runtime;
        let resolve = runtime.resolve(promise);
        let mut fired = self.fired.clone();
        fired.mark_unchanged();
        let generation = armed.generation();
        let ended = async move {
            // Resolves once the watchdog ends this render (a cancel, or
            // its deadline) even while no JS runs to be terminated.
            while fired.changed().await.is_ok() {
                if *fired.borrow() == generation {
                    return;
                }
            }
            std::future::pending::<()>().await
        };
        let waited = self.tokio.block_on(async {
            tokio::select! {
                r = runtime.with_event_loop_promise(resolve, PollEventLoopOptions::default()) => Ok(r),
                _ = tokio::time::sleep(remaining) => Err(()),
                _ = ended => Err(()),
            }
        });
        match waited {
            Err(()) => Step::TimedOut,
            Ok(Ok(value)) => {
                deno_core::scope!(scope, &mut self.runtime);
                let value = v8::Local::new(scope, value);
                Step::Done(answer::read(scope, value, max_answer_bytes))
            }
            Ok(Err(_)) if self.runtime.v8_isolate().is_execution_terminating() => Step::Terminated,
            Ok(Err(e)) => {
                let msg = e.to_string();
                if self.heap_exhausted.get() {
                    return Step::Terminated;
                }
                Step::Done(Err(JobError::new(
                    Cause::Bundle { code: 500 },
                    "Error",
                    if msg.contains("event loop has already resolved") {
                        "the render returned a promise that never settles".to_string()
                    } else {
                        msg
                    },
                )
                .capped()))
            }
        }
    }

    fn call_host(&mut self, method: &str) -> Result<v8::Global<v8::Value>> {
        let _enter = self.tokio.enter();
        deno_core::scope!(scope, &mut self.runtime);
        v8::tc_scope!(let tc, scope);
        let host = v8::Local::new(tc, &self.host);
        let f = get_function(tc, host, method)
            .ok_or_else(|| Error::bundle(format!("host glue has no {method}")))?;
        let f = v8::Local::new(tc, f);
        let recv = v8::undefined(tc).into();
        match f.call(tc, recv, &[]) {
            Some(v) => Ok(v8::Global::new(tc, v)),
            None => {
                let msg = tc
                    .exception()
                    .map(|e| e.to_rust_string_lossy(tc))
                    .unwrap_or_else(|| "terminated".into());
                Err(Error::bundle(msg))
            }
        }
    }

    fn call_host_string(&mut self, method: &str) -> Result<String> {
        let v = self.call_host(method)?;
        deno_core::scope!(scope, &mut self.runtime);
        let v = v8::Local::new(scope, v);
        Ok(if v.is_string() {
            v.to_rust_string_lossy(scope)
        } else {
            String::new()
        })
    }
}

fn get_function<'s>(
    scope: &v8::PinScope<'s, '_>,
    obj: v8::Local<'s, v8::Object>,
    name: &str,
) -> Option<v8::Global<v8::Function>> {
    let key = v8::String::new(scope, name)?;
    let f: v8::Local<v8::Function> = obj.get(scope, key.into())?.try_into().ok()?;
    Some(v8::Global::new(scope, f))
}

fn timeout_error(timeout: Duration) -> JobError {
    Failure::RenderTimeout.error(format!(
        "render ran past its {} ms limit and was stopped",
        timeout.as_millis()
    ))
}

fn heap_error() -> JobError {
    Failure::HeapLimitExceeded
        .error("render exhausted the worker's JS heap; the worker will be replaced")
}

/// What the watchdog stops: the isolate, telling `await_promise` which
/// render it ended.
struct Stopper {
    /// Terminates running JS from another thread.
    isolate: v8::IsolateHandle,
    /// The generation of the render just ended.
    fired: tokio::sync::watch::Sender<u64>,
}

impl Terminate for Stopper {
    fn terminate(&self, generation: u64) {
        self.isolate.terminate_execution();
        let _ = self.fired.send(generation);
    }
}
