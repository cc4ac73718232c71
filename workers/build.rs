//! Compiles the JavaScript of the deno extensions the worker uses (deno_web,
//! deno_webidl) into the binary.
//!
//! deno_core 0.413's `extension!` records only the absolute paths of an
//! extension's JS files and reads them whenever an isolate starts without a
//! snapshot, which is how `ssrd up` and every reload build theirs. A binary
//! copied to another host (a container image, a package) would then need
//! this machine's `~/.cargo/registry` to start. This script finds each
//! extension's source directory with `cargo metadata` and generates a table
//! of `(path, source)` pairs, `include_str!`-ed at build time; web_apis.rs
//! swaps every recorded path for its compiled-in source.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The extensions whose JS is embedded.
const CRATES: [&str; 2] = ["deno_web", "deno_webidl"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../Cargo.lock");
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(manifest_dir.join("Cargo.toml"))
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let mut entries = Vec::new();
    for name in CRATES {
        let package = meta["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not in the dependency graph"));
        let dir = Path::new(package["manifest_path"].as_str().expect("manifest_path"))
            .parent()
            .expect("a crate directory")
            .to_path_buf();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "js"))
            .collect();
        files.sort();
        for file in files {
            let path = file.to_str().expect("a UTF-8 path").to_string();
            entries.push(format!(
                "    ({path:?}, deno_core::ascii_str_include!({path:?})),\n"
            ));
        }
    }
    let code = format!(
        "/// deno extension JS by the absolute path `extension!` recorded.\n\
         pub static EMBEDDED_JS: &[(&str, deno_core::FastStaticString)] = &[\n{}];\n",
        entries.concat()
    );
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out_dir.join("embedded_js.rs"), code).expect("writing embedded_js.rs");
}
