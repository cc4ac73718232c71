//! Where things are: the repository, the built `ssrd`, bundles, fixtures,
//! and a fresh directory per test.

use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ssrd"))
}

/// A built bundle from js-bundle/dist (e.g. "faults.js").
pub fn bundle(name: &str) -> PathBuf {
    let p = root().join("js-bundle/dist").join(name);
    assert!(
        p.exists(),
        "{} is missing: build the JS bundle first (cd js-bundle && npm ci && npm run build)",
        p.display()
    );
    p
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// A fresh directory for one test's files.
pub fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ssrd-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn bench_fixture(name: &str) -> Vec<u8> {
    std::fs::read(root().join("bench/fixtures").join(name)).expect("bench fixture")
}
