//! Bringing an engine up: load the bundle (or its snapshot), start the
//! isolate, check the contract, render the bundle's warm-up jobs.
//!
//! Shared by the worker's render thread and `ssrd render`, so a bundle is
//! judged ready the same way everywhere.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::bundle::{self, Bundle};
use crate::error::{Error, Result};
use crate::js_runtime::{Engine, EngineOptions};
use crate::memory;
use crate::snapshot;

/// What an engine is started from.
#[derive(Debug, Clone)]
pub struct BootConfig {
    /// The bundle to evaluate.
    pub bundle: PathBuf,
    /// Snapshot cache file: used if current, else built and written.
    pub snapshot: Option<PathBuf>,
    /// V8 heap limit for the isolate, bytes.
    pub heap_limit_bytes: usize,
    /// V8 young-generation semi-space, bytes.
    pub semi_space_bytes: usize,
    /// The largest answer one job may return, bytes.
    pub max_answer_bytes: usize,
    /// Per-job deadline enforced by the watchdog.
    pub render_timeout: Duration,
    /// How many times each of the bundle's warm-up jobs is rendered.
    pub warmup_rounds: u32,
    /// Resident memory past which a running render is stopped
    /// (memory_guard.rs); 0 = not watched.
    pub memory_guard_bytes: u64,
}

/// How the engine came up, for the ready line.
#[derive(Debug, Clone)]
pub struct Boot {
    /// From the start of boot to the isolate holding the bundle.
    pub boot_ms: f64,
    /// Time spent rendering warm-up jobs.
    pub warmup_ms: f64,
    /// "loaded", "built" or "none".
    pub snapshot: &'static str,
    /// The bundle wants its /batch HTML in Hypernova's placement markup.
    pub placement: bool,
}

/// Everything needed to start another engine like the first one, fast:
/// the bundle and its snapshot are already in memory. `request` isolation
/// starts one per request.
pub struct Recipe {
    /// The bundle (evaluated again only when there is no snapshot).
    bundle: Bundle,
    /// Limits and the snapshot blob.
    options: EngineOptions,
}

impl Recipe {
    /// A fresh engine: a new isolate holding the evaluated bundle, with
    /// nothing any earlier render did.
    pub fn start(&self) -> Result<Engine> {
        Engine::new(&self.bundle, self.options)
    }

    /// The bundle's source (the render cache keys on its hash).
    pub fn bundle_source(&self) -> &str {
        &self.bundle.code
    }
}

/// Sets this process's V8 flags for engines booted from `config`: the
/// memory bounds its heap limit implies (memory.rs), then the operator's
/// `extra` flags. Once, before the first isolate; the worker and `ssrd
/// render` both start this way.
pub fn set_v8_flags(config: &BootConfig, extra: &str) -> Result<()> {
    let flags = format!("{} {extra}", memory::v8_flags(config.heap_limit_bytes));
    bundle::set_v8_flags(&flags)
}

/// Starts an engine and warms it up. A bundle whose own warm-up jobs fail
/// is broken: it is refused with a `Bundle` error.
pub fn boot(config: &BootConfig) -> Result<(Engine, Boot)> {
    boot_with_recipe(config).map(|(engine, boot, _)| (engine, boot))
}

/// As [`boot`], also returning the recipe for more engines like it.
pub fn boot_with_recipe(config: &BootConfig) -> Result<(Engine, Boot, Recipe)> {
    let started = Instant::now();
    let bundle = Bundle::load(&config.bundle)?;
    let (blob, origin) = match &config.snapshot {
        Some(path) => {
            let (blob, origin) = snapshot::load_or_build(path, &bundle)?;
            let origin = match origin {
                snapshot::Origin::Loaded => "loaded",
                snapshot::Origin::Built => "built",
            };
            (Some(blob), origin)
        }
        None => (None, "none"),
    };
    let options = EngineOptions {
        heap_limit_bytes: config.heap_limit_bytes,
        semi_space_bytes: config.semi_space_bytes,
        snapshot: blob,
        max_answer_bytes: config.max_answer_bytes,
        memory_guard_bytes: config.memory_guard_bytes,
    };
    let mut engine = Engine::new(&bundle, options)?;
    let boot_ms = ms(started.elapsed());
    let warm = Instant::now();
    warm_up(&mut engine, config.warmup_rounds, config.render_timeout)?;
    let placement = engine.wants_placement();
    Ok((
        engine,
        Boot {
            boot_ms,
            warmup_ms: ms(warm.elapsed()),
            snapshot: origin,
            placement,
        },
        Recipe { bundle, options },
    ))
}

/// Renders the bundle's warm-up jobs `rounds` times, so V8 has compiled
/// and optimised the hot paths before the first real request.
pub fn warm_up(engine: &mut Engine, rounds: u32, timeout: Duration) -> Result<()> {
    if rounds == 0 {
        return Ok(());
    }
    let jobs = engine.warmup_jobs()?;
    for _ in 0..rounds {
        for (name, props) in &jobs {
            match engine.render(name, props, None, timeout) {
                // Rendering nothing on the server is a choice (a
                // client-only component), not a broken bundle.
                Err(e) if e.failure() == Some(crate::job::Failure::EmptyRender) => {}
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::bundle(format!(
                        "warm-up render of {name:?} failed: {}: {}",
                        e.name,
                        e.message_text()
                    )))
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
