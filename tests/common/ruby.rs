//! The unchanged hypernova-ruby gem, driven by `tests/gem/page.rb` the way
//! a Rails controller drives it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{root, wait_output};

/// Renders the page `spec` describes (see page.rb) through the gem at
/// `lib` and returns what page.rb prints.
pub fn gem_page(lib: &Path, spec: &Value) -> Value {
    let mut child = Command::new("ruby")
        .arg(root().join("tests/gem/page.rb"))
        .env("HYPERNOVA_RUBY_LIB", lib)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ruby (apt-get install ruby ruby-faraday)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let out = wait_output(child, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "page.rb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("page.rb prints JSON")
}
