//! The web APIs a bundle gets, and nothing more.
//!
//! SSR code touches a handful of web platform APIs (console, timers, URL,
//! TextEncoder, structuredClone, atob/btoa, performance, MessageChannel…).
//! They come from Deno's published `deno_web` extension, version-matched to
//! the pinned deno_core, and are installed on `globalThis` by `js/host.js`,
//! which also defines the render glue. No extension with file, network or
//! process access is included, and sandbox.rs takes `Deno` and the glue out
//! of the global scope before any bundle code runs.

use std::sync::Arc;

use deno_core::Extension;

deno_core::extension!(
    ssrd_host,
    deps = [deno_webidl, deno_web],
    esm_entry_point = "ext:ssrd_host/host.js",
    esm = [dir "js", "host.js"],
    middleware = crate::sandbox::filter_op,
    global_object_middleware = crate::sandbox::restore_for_startup,
);

/// The extensions every isolate is created with, in dependency order. The
/// same list must be used to build a snapshot and to start from it.
pub fn extensions() -> Vec<Extension> {
    vec![
        deno_webidl::deno_webidl::init(),
        deno_web::deno_web::init(
            Arc::new(deno_web::BlobStore::default()) as Arc<dyn deno_web::BlobStoreTrait>,
            None,
            false,
            Default::default(),
        ),
        ssrd_host::init(),
    ]
}
