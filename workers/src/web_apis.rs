//! The web APIs a bundle gets, and nothing more.
//!
//! SSR code touches a handful of web platform APIs (console, timers, URL,
//! TextEncoder, structuredClone, atob/btoa, performance, MessageChannel,
//! web streams…). They come from Deno's published `deno_web` extension,
//! version-matched to the pinned deno_core, and are installed on
//! `globalThis` by `js/host.js`, which also defines the render glue.
//! `Headers`/`Request`/`Response` are ssrd's own (`js/fetch_classes.js`):
//! `deno_fetch` would bring a network stack, TLS, DNS, file access and
//! permissions with them. No extension with file, network or process access
//! is included, and sandbox.rs takes `Deno` and the glue out of the global
//! scope before any bundle code runs.

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
    esm_entry_point = "ext:ssrd_host/host.js",
    esm = [dir "js", "host.js", "fetch_classes.js"],
    middleware = crate::sandbox::filter_op,
    global_object_middleware = crate::sandbox::restore_for_startup,
);

/// The host's own JS, as baked into this binary: a snapshot built with
/// other sources must not be loaded (snapshot.rs keys files on these).
pub const HOST_SOURCES: [&str; 2] = [
    include_str!("../js/host.js"),
    include_str!("../js/fetch_classes.js"),
];

/// The same files as extension modules, compiled in. `extension!`'s `esm`
/// list only records their paths and reads the files when an isolate
/// starts: the binary would run whatever `workers/js/` holds on disk at
/// that moment (not what the snapshot key was computed from), and not at
/// all away from the source tree. Both files must stay 7-bit ASCII (V8
/// reads them as one-byte strings).
static HOST_MODULES: [ExtensionFileSource; 2] = [
    ExtensionFileSource::new(
        "ext:ssrd_host/host.js",
        deno_core::ascii_str_include!("../js/host.js"),
    ),
    ExtensionFileSource::new(
        "ext:ssrd_host/fetch_classes.js",
        deno_core::ascii_str_include!("../js/fetch_classes.js"),
    ),
];

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
    ext.esm_files = Cow::Borrowed(&HOST_MODULES);
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
    fn host_sources_are_ascii() {
        for source in super::HOST_SOURCES {
            let bad: String = source.chars().filter(|c| !c.is_ascii()).collect();
            assert!(bad.is_empty(), "non-ASCII in a host script: {bad:?}");
        }
    }
}
