//! The web APIs a bundle gets, and nothing more.
//!
//! SSR code touches a handful of web platform APIs (console, timers, URL,
//! TextEncoder, structuredClone, atob/btoa, performance, MessageChannel,
//! web streams…). They come from Deno's published `deno_web` extension,
//! version-matched to the pinned deno_core, and are installed on
//! `globalThis` by the host's own JS in `js/` (its entry point `js/host.js`
//! lists each file and what it does; `js/globals.js` is the table of
//! globals, `js/render_glue.js` the render glue). `Headers`/`Request`/
//! `Response` are ssrd's own (`js/fetch_classes.js` and the `js/fetch_*.js`
//! it gathers): `deno_fetch` would bring a network stack, TLS, DNS, file
//! access and permissions with them. No extension with file, network or
//! process access is included, and sandbox.rs takes `Deno` and the glue out
//! of the global scope before any bundle code runs.

use std::borrow::Cow;
use std::sync::Arc;

use deno_core::{Extension, ExtensionFileSource};

deno_core::extension!(
    ssrd_host,
    deps = [deno_webidl, deno_web],
    ops = [
        crate::memory::op_ssrd_offheap_charge,
        crate::memory::op_ssrd_offheap_release,
    ],
    // The modules themselves are HOST_MODULES below, swapped in by
    // host_extension(); only host.js is evaluated, and it imports the rest.
    esm_entry_point = "ext:ssrd_host/host.js",
    middleware = crate::sandbox::filter_op,
    global_object_middleware = crate::sandbox::restore_for_startup,
);

/// Declares the host's JS files once: `HOST_SOURCES` (their text) and
/// `HOST_MODULES` (the same files as `ext:ssrd_host/<file>` modules).
macro_rules! host_files {
    ($($file:literal),+ $(,)?) => {
        /// The host's own JS, as baked into this binary: a snapshot built with
        /// other sources must not be loaded (snapshot.rs keys files on these).
        pub const HOST_SOURCES: &[&str] = &[$(include_str!(concat!("../js/", $file))),+];

        /// The same files as extension modules, compiled in. `extension!`'s
        /// `esm` list would only record their paths and read the files when
        /// an isolate starts: the binary would run whatever `workers/js/`
        /// holds on disk at that moment (not what the snapshot key was
        /// computed from), and not at all away from the source tree. Every
        /// file must stay 7-bit ASCII (V8 reads them as one-byte strings).
        static HOST_MODULES: &[ExtensionFileSource] = &[$(
            ExtensionFileSource::new(
                concat!("ext:ssrd_host/", $file),
                deno_core::ascii_str_include!(concat!("../js/", $file)),
            )
        ),+];
    };
}

// Every file host.js imports, directly or not (the order is not the order
// of evaluation: host.js's imports decide that).
host_files!(
    "host.js",
    "util.js",
    "deno_web.js",
    "fetch_classes.js",
    "fetch_headers.js",
    "fetch_body.js",
    "fetch_request.js",
    "fetch_response.js",
    "job_scope.js",
    "bundle_log.js",
    "offheap_budget.js",
    "late_callbacks.js",
    "node_compat.js",
    "web_streams.js",
    "globals.js",
    "answers.js",
    "render_glue.js",
    "between_jobs.js",
    "lockdown.js",
);

// deno_web's and deno_webidl's JS, compiled in by build.rs.
include!(concat!(env!("OUT_DIR"), "/embedded_js.rs"));

/// The extensions every isolate is created with, in dependency order. The
/// same list must be used to build a snapshot and to start from it.
pub fn extensions() -> Vec<Extension> {
    vec![
        embedded(deno_webidl::deno_webidl::init()),
        embedded(deno_web::deno_web::init(
            Arc::new(deno_web::BlobStore::default()) as Arc<dyn deno_web::BlobStoreTrait>,
            None,
            false,
            Default::default(),
        )),
        host_extension(),
    ]
}

/// `ext` with every JS file it would read from disk at isolate start
/// replaced by the source compiled into this binary (build.rs says why).
fn embedded(mut ext: Extension) -> Extension {
    fn swap(files: &mut Cow<'static, [ExtensionFileSource]>) {
        let swapped: Vec<ExtensionFileSource> = files
            .iter()
            .map(|f| {
                #[allow(deprecated)]
                let path = match &f.code {
                    deno_core::ExtensionFileSourceCode::LoadedFromFsDuringSnapshot(path) => *path,
                    _ => return f.clone(),
                };
                match EMBEDDED_JS.iter().find(|(p, _)| *p == path) {
                    Some((_, code)) => ExtensionFileSource::new(f.specifier, *code),
                    None => f.clone(),
                }
            })
            .collect();
        *files = Cow::Owned(swapped);
    }
    swap(&mut ext.js_files);
    swap(&mut ext.esm_files);
    swap(&mut ext.lazy_loaded_js_files);
    swap(&mut ext.lazy_loaded_esm_files);
    ext
}

fn host_extension() -> Extension {
    let mut ext = ssrd_host::init();
    ext.esm_files = Cow::Borrowed(HOST_MODULES);
    ext
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_extension_reads_its_js_from_disk() {
        for ext in super::extensions() {
            for f in ext
                .js_files
                .iter()
                .chain(ext.esm_files.iter())
                .chain(ext.lazy_loaded_js_files.iter())
                .chain(ext.lazy_loaded_esm_files.iter())
            {
                #[allow(deprecated)]
                let from_disk = matches!(
                    f.code,
                    deno_core::ExtensionFileSourceCode::LoadedFromFsDuringSnapshot(_)
                );
                assert!(!from_disk, "{} would be read from disk", f.specifier);
            }
        }
    }

    #[test]
    fn every_host_file_is_compiled_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("workers/js")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".js"))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = super::HOST_MODULES
            .iter()
            .map(|f| f.specifier.trim_start_matches("ext:ssrd_host/").to_owned())
            .collect();
        listed.sort();
        assert_eq!(
            on_disk, listed,
            "host_files! in web_apis.rs and workers/js/ differ"
        );
    }

    #[test]
    fn host_sources_are_ascii() {
        for source in super::HOST_SOURCES {
            let bad: String = source.chars().filter(|c| !c.is_ascii()).collect();
            assert!(bad.is_empty(), "non-ASCII in a host script: {bad:?}");
        }
    }
}
