//! A JS bundle as the worker holds it (its source, the name its stack
//! traces show, its source map), evaluating it into an isolate, and the V8
//! flags every isolate of the process starts with.

use std::sync::Arc;

use deno_core::JsRuntime;

use crate::error::{Error, ErrorKind, Result};
use crate::stack_map::StackMap;

/// Sets V8 flags for this process (e.g. `--max-semi-space-size=32`). Must
/// run before the first isolate is created; unknown flags are an error.
pub fn set_v8_flags(flags: &str) -> Result<()> {
    let mut args = vec![String::new()];
    args.extend(flags.split_whitespace().map(str::to_owned));
    if args.len() == 1 {
        return Ok(());
    }
    let rest = deno_core::v8_set_flags(args);
    if rest.len() > 1 {
        return Err(Error::new(
            ErrorKind::Config,
            format!("V8 does not know these flags: {}", rest[1..].join(" ")),
        ));
    }
    Ok(())
}

/// A JS bundle: its source, the name stack traces show for it, and its
/// source map (stack_map.rs).
#[derive(Clone)]
pub struct Bundle {
    /// Shown in stack traces and error messages (usually the file path).
    pub name: String,
    /// The whole bundle: a classic script that sets `globalThis.ssrd`.
    pub code: String,
    /// Maps failed jobs' stacks through the bundle's source map, if it has
    /// one; shared by every engine started from this bundle.
    pub stacks: Arc<StackMap>,
}

impl Bundle {
    /// A bundle without a source map.
    pub fn new(name: impl Into<String>, code: impl Into<String>) -> Bundle {
        let name = name.into();
        Bundle {
            stacks: Arc::new(StackMap::none(name.clone())),
            name,
            code: code.into(),
        }
    }

    /// The bundle at `path`, with the source map beside it or named by its
    /// `sourceMappingURL` comment (found now, read on the first failed job).
    pub fn load(path: &std::path::Path) -> Result<Bundle> {
        let code = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::Bundle,
                format!("reading {}: {e}", path.display()),
            )
        })?;
        let name = path.display().to_string();
        Ok(Bundle {
            stacks: Arc::new(StackMap::for_bundle(path, name.clone(), &code)),
            name,
            code,
        })
    }
}

/// Evaluates the bundle (the isolate must be sealed first).
pub(crate) fn evaluate_bundle(runtime: &mut JsRuntime, bundle: &Bundle) -> Result<()> {
    runtime
        .execute_script(bundle.name.clone(), bundle.code.clone())
        .map(|_| ())
        .map_err(|e| Error::bundle(format!("evaluating {}: {e}", bundle.name)))
}
