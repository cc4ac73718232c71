//! Compiles the JavaScript of the deno extensions the worker uses (deno_web,
//! deno_webidl) into the binary.
//!
//! deno_core 0.413's `extension!` records only the absolute paths of an
//! extension's JS files and reads them whenever an isolate starts without a
//! snapshot, which is how `ssrd up` and every reload build theirs. A binary
//! copied to another host (a container image, a package) would then need
//! this machine's `~/.cargo/registry` to start.
//!
//! So this script asks the extensions themselves: deno_web and deno_webidl
//! are build-dependencies too, and the paths their `init()` records are
//! where cargo unpacked them for this build (the registry, a vendor
//! directory or a git checkout alike). It generates a table of `(path,
//! source)` pairs, `include_str!`-ed at build time; web_apis.rs swaps every
//! recorded path for its compiled-in source. Nothing here runs a command
//! or reaches the network: a fresh machine that has only the host
//! platform's crates builds it (issue 15).

use std::path::PathBuf;
use std::sync::Arc;

use deno_core::{Extension, ExtensionFileSource, ExtensionFileSourceCode};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let extensions = [
        deno_webidl::deno_webidl::init(),
        deno_web::deno_web::init(
            Arc::new(deno_web::BlobStore::default()) as Arc<dyn deno_web::BlobStoreTrait>,
            None,
            false,
            Default::default(),
        ),
    ];
    let mut entries = Vec::new();
    for ext in &extensions {
        for path in recorded_paths(ext) {
            println!("cargo:rerun-if-changed={path}");
            entries.push(format!(
                "    ({path:?}, deno_core::ascii_str_include!({path:?})),\n"
            ));
        }
    }
    assert!(
        !entries.is_empty(),
        "deno_web records no JS files: has deno_core changed how extensions keep them?"
    );
    let code = format!(
        "/// deno extension JS by the absolute path `extension!` recorded.\n\
         pub static EMBEDDED_JS: &[(&str, deno_core::FastStaticString)] = &[\n{}];\n",
        entries.concat()
    );
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out_dir.join("embedded_js.rs"), code).expect("writing embedded_js.rs");
}

/// The files `ext` would read from disk when an isolate starts.
fn recorded_paths(ext: &Extension) -> Vec<&'static str> {
    let files: [&[ExtensionFileSource]; 4] = [
        &ext.js_files,
        &ext.esm_files,
        &ext.lazy_loaded_js_files,
        &ext.lazy_loaded_esm_files,
    ];
    files
        .into_iter()
        .flatten()
        .filter_map(|f| {
            #[allow(deprecated)]
            match f.code {
                ExtensionFileSourceCode::LoadedFromFsDuringSnapshot(path) => Some(path),
                _ => None,
            }
        })
        .collect()
}
