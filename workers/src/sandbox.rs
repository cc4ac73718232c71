//! What bundle code can reach: the web APIs it is given, and nothing of the
//! host.
//!
//! deno_core keeps its internals on the global object (`Deno.core` with
//! every op, `__bootstrap` with the primordials), and the render glue lives
//! there too (`__ssrdHost`). Before any bundle code runs, [`seal`] moves
//! all three into V8 *private* properties of the global object: invisible
//! to JS (no property walk, `Reflect.ownKeys` or proxy trick reaches a
//! private symbol), kept in a startup snapshot, readable from Rust. The
//! render glue captured what it needs in closures when it ran, so nothing
//! in JS needs them again. deno_core itself reads `Deno.core` while it
//! starts an isolate from a snapshot: [`restore_for_startup`] (a global
//! object middleware) puts it back for exactly that moment, and [`seal`]
//! takes it away again before anything else runs.
//!
//! Beyond that:
//! - dynamic `import()` is refused outright ([`deny_import`]): a classic
//!   script has nothing to import, and an `ext:` module would be a way in;
//! - ops that do nothing a render needs and would give host effects or
//!   state shared between isolates are disabled ([`filter_op`]), so even
//!   code that got hold of `Deno.core` could not use them.

use deno_core::v8;
use deno_core::{JsRuntime, OpDecl};

use crate::error::{Error, ErrorKind, Result};

/// Global properties moved out of JS's reach, and the private keys that
/// keep them.
const SEALED: [(&str, &str); 3] = [
    ("Deno", "ssrd::Deno"),
    ("__bootstrap", "ssrd::__bootstrap"),
    ("__ssrdHost", "ssrd::host"),
];

/// Ops disabled in every isolate: process and host effects (`op_panic`
/// aborts the process; raw resource reads and writes; imports and code
/// evaluation outside the bundle; promise hooks; memory and resource
/// introspection), deno_core's test ops, and deno_web state shared across
/// isolates in one process (blob URLs), none of which ssrd exposes. The web
/// streams ssrd offers are plain JS streams: the resource-backed fast paths
/// (`op_read_all`, `op_write_all`, `op_pipe`) have no resource to work on.
const DISABLED_OPS: &[&str] = &[
    "op_panic",
    "op_read",
    "op_write",
    "op_read_all",
    "op_write_all",
    "op_pipe",
    "op_read_sync",
    "op_write_sync",
    "op_shutdown",
    "op_resources",
    "op_import_sync",
    "op_import_sync_with_source",
    "op_eval_context",
    "op_compile_function",
    "op_set_promise_hooks",
    "op_lazy_load_esm",
    "op_memory_usage",
    "op_add_main_module_handler",
    "op_set_wasm_streaming_callback",
    "op_abort_wasm_streaming",
    "op_add",
    "op_add_async",
    "op_void_sync",
    "op_void_async",
    "op_void_async_deferred",
    "op_error_async",
    "op_error_async_deferred",
    "op_blob_create_object_url",
    "op_blob_revoke_object_url",
    "op_blob_from_object_url",
];

/// Families of ops disabled the same way: Web Locks and BroadcastChannel
/// (process-wide state shared between isolates), leak tracing and wasm
/// streaming (host-side machinery), and turning a JS stream into a host
/// resource (deno_web's fetch and server plumbing; nothing in ssrd reads one).
const DISABLED_PREFIXES: &[&str] = &[
    "op_lock_manager_",
    "op_broadcast_",
    "op_readable_stream_resource_",
    "op_leak_tracing_",
    "op_wasm_streaming_",
];

fn disabled(name: &str) -> bool {
    DISABLED_OPS.contains(&name) || DISABLED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The op middleware of the host extension (applies to every op).
pub fn filter_op(op: OpDecl) -> OpDecl {
    if disabled(op.name) {
        op.disable()
    } else {
        op
    }
}

fn private_key<'s>(scope: &v8::PinScope<'s, '_>, name: &str) -> Option<v8::Local<'s, v8::Private>> {
    let name = v8::String::new(scope, name)?;
    Some(v8::Private::for_api(scope, Some(name)))
}

/// Moves `Deno`, `__bootstrap` and the render glue out of JS's reach, and
/// refuses dynamic imports from now on. Call before any bundle code runs,
/// and again right after an isolate starts from a snapshot.
pub fn seal(runtime: &mut JsRuntime) -> Result<()> {
    let sealed = {
        deno_core::scope!(scope, runtime);
        let global = scope.get_current_context().global(scope);
        SEALED.iter().all(|(name, private)| {
            let (Some(key), Some(pkey)) =
                (v8::String::new(scope, name), private_key(scope, private))
            else {
                return false;
            };
            let Some(value) = global.get(scope, key.into()) else {
                return false;
            };
            if !value.is_undefined() {
                if global.set_private(scope, pkey, value) != Some(true) {
                    return false;
                }
                if global.delete(scope, key.into()) != Some(true) {
                    return false;
                }
            }
            // Whatever was there is gone now, or never was.
            global
                .has_own_property(scope, key.into())
                .is_some_and(|has| !has)
        })
    };
    if !sealed {
        return Err(Error::new(
            ErrorKind::Internal,
            "could not move the host's internals out of the bundle's reach",
        ));
    }
    let isolate = runtime.v8_isolate();
    isolate.set_host_import_module_dynamically_callback(deny_import);
    isolate.set_host_import_module_with_phase_dynamically_callback(deny_import_with_phase);
    Ok(())
}

/// The render glue (`renderJob`, `checkContract`, …), from its private slot.
pub fn host<'s>(scope: &v8::PinScope<'s, '_>) -> Option<v8::Local<'s, v8::Object>> {
    let global = scope.get_current_context().global(scope);
    let key = private_key(scope, "ssrd::host")?;
    global.get_private(scope, key)?.try_into().ok()
}

/// Global object middleware: while an isolate starts from a snapshot,
/// deno_core reads `Deno.core`; give it back for that moment (`seal`
/// removes it again).
pub fn restore_for_startup<'s, 'i>(
    scope: &mut v8::PinScope<'s, 'i>,
    global: v8::Local<'s, v8::Object>,
) {
    let (Some(key), Some(pkey)) = (
        v8::String::new(scope, "Deno"),
        private_key(scope, "ssrd::Deno"),
    ) else {
        return;
    };
    if let Some(deno) = global
        .get_private(scope, pkey)
        .filter(|v| !v.is_undefined())
    {
        global.define_own_property(scope, key.into(), deno, v8::PropertyAttribute::DONT_ENUM);
    }
}

fn rejected<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    specifier: v8::Local<'s, v8::String>,
) -> Option<v8::Local<'s, v8::Promise>> {
    let resolver = v8::PromiseResolver::new(scope)?;
    let what = specifier.to_rust_string_lossy(scope);
    let msg = v8::String::new(
        scope,
        &format!("import({what:?}) is not available in ssrd: a bundle is one script, with everything it needs inside"),
    )?;
    let error = v8::Exception::type_error(scope, msg);
    resolver.reject(scope, error);
    Some(resolver.get_promise(scope))
}

fn deny_import<'s, 'i>(
    scope: &mut v8::PinScope<'s, 'i>,
    _options: v8::Local<'s, v8::Data>,
    _resource: v8::Local<'s, v8::Value>,
    specifier: v8::Local<'s, v8::String>,
    _attributes: v8::Local<'s, v8::FixedArray>,
) -> Option<v8::Local<'s, v8::Promise>> {
    rejected(scope, specifier)
}

fn deny_import_with_phase<'s, 'i>(
    scope: &mut v8::PinScope<'s, 'i>,
    _options: v8::Local<'s, v8::Data>,
    _resource: v8::Local<'s, v8::Value>,
    specifier: v8::Local<'s, v8::String>,
    _phase: v8::ModuleImportPhase,
    _attributes: v8::Local<'s, v8::FixedArray>,
) -> Option<v8::Local<'s, v8::Promise>> {
    rejected(scope, specifier)
}

/// Calls the render glue's `method` with no arguments; its result, or the
/// exception's text.
pub fn call_host<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    method: &str,
) -> std::result::Result<v8::Local<'s, v8::Value>, String> {
    let host = host(scope).ok_or("the render glue is missing from the isolate")?;
    let key = v8::String::new(scope, method).ok_or("out of memory")?;
    let f = host
        .get(scope, key.into())
        .and_then(|f| v8::Local::<v8::Function>::try_from(f).ok())
        .ok_or_else(|| format!("the render glue has no {method}"))?;
    v8::tc_scope!(let tc, scope);
    let recv = v8::undefined(tc).into();
    match f.call(tc, recv, &[]) {
        Some(v) => Ok(v),
        None => Err(tc
            .exception()
            .map(|e| e.to_rust_string_lossy(tc))
            .unwrap_or_else(|| format!("{method} was terminated"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deno_core::RuntimeOptions;

    /// Every op name in an isolate, read before it is sealed.
    fn op_names() -> Vec<String> {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _enter = tokio.enter();
        let mut runtime = JsRuntime::new(RuntimeOptions {
            extensions: crate::web_apis::extensions(),
            ..Default::default()
        });
        let names = runtime
            .execute_script("ops", "Object.keys(Deno.core.ops).join(',')")
            .unwrap();
        deno_core::scope!(scope, &mut runtime);
        let names = v8::Local::new(scope, names).to_rust_string_lossy(scope);
        names.split(',').map(str::to_string).collect()
    }

    #[test]
    fn the_disabled_ops_exist_so_the_list_is_not_stale() {
        let names = op_names();
        let missing: Vec<&&str> = DISABLED_OPS
            .iter()
            .chain(DISABLED_PREFIXES)
            .filter(|op| !names.iter().any(|n| n.starts_with(*op)))
            .collect();
        assert!(
            missing.is_empty(),
            "no longer ops: {missing:?}; all: {names:?}"
        );
        let enabled: Vec<&String> = names.iter().filter(|n| !disabled(n)).collect();
        eprintln!("{} ops enabled: {enabled:?}", enabled.len());
    }
}
