//! `ssrd render NAME [PROPS]`: one render, no HTTP, HTML to stdout.
//!
//! Failures print the job's error as JSON to stderr and exit 1. With
//! `--repeat N` it is also the in-isolate throughput benchmark: N renders in
//! a loop, no HTTP, figures as one JSON line on stderr — the ceiling a whole
//! tier on the machine is measured against. `--batch FILE` does the same
//! for every job of a Hypernova batch body (printing the batch response).

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use ssrd_worker::protocol::{self, JobResult};
use ssrd_worker::{boot, Engine, Isolation};

use crate::cli::RenderArgs;

pub fn run(args: RenderArgs) -> i32 {
    match render(&args) {
        Ok(out) => {
            // A closed stdout (e.g. piped into `head`) is not an error worth a panic.
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{out}");
            0
        }
        Err(json) => {
            eprintln!("{json}");
            1
        }
    }
}

/// What one iteration renders: a component with props, or a whole batch.
enum Work {
    One { name: String, props: String },
    Batch(Vec<(String, Option<String>, String)>),
}

fn render(args: &RenderArgs) -> Result<String, String> {
    let work = match (&args.batch, &args.name) {
        (Some(path), _) => {
            let body =
                std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let jobs = protocol::parse_batch(&body).map_err(|e| e.to_json())?;
            Work::Batch(
                jobs.into_iter()
                    .map(|j| match j.spec {
                        Ok(s) => Ok((j.token, Some(s.name), s.props.get().to_string())),
                        Err(e) => Err(format!("job {:?}: {}", j.token, e.message_text())),
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        (None, Some(name)) => {
            let props = read_props(args.props.as_deref()).map_err(|e| e.to_json())?;
            let props = protocol::parse_props(&props).map_err(|e| e.to_json())?;
            Work::One {
                name: name.clone(),
                props: props.get().to_string(),
            }
        }
        (None, None) => return Err("give a component NAME or --batch FILE".into()),
    };
    let flags = format!(
        "{} {}",
        ssrd_worker::memory::v8_flags((args.engine.heap_limit_mb as usize) << 20),
        args.engine.v8_flags
    );
    ssrd_worker::js_runtime::set_v8_flags(&flags).map_err(|e| e.to_json())?;
    // The worker's boot: bundle, contract check and, when measuring, the
    // same warm-up a worker does before it reports ready.
    let rounds = if args.repeat > 1 {
        args.engine.warmup_rounds
    } else {
        0
    };
    let fresh = args.engine.isolation == Isolation::Request;
    // Fresh isolates start from a snapshot, as a worker's do.
    let snapshot = fresh
        .then(|| std::env::temp_dir().join(format!("ssrd-render-{}.snap", std::process::id())));
    let booted = boot::boot_with_recipe(&args.engine.boot_config(snapshot.clone(), rounds));
    if let Some(path) = &snapshot {
        let _ = std::fs::remove_file(path);
    }
    let (mut engine, _, recipe) = booted.map_err(|e| e.to_json())?;
    let timeout = Duration::from_millis(args.engine.render_timeout_ms);
    let once = |engine: &mut Engine| -> Result<String, String> {
        match &work {
            Work::One { name, props } => engine
                .render(name, props, None, timeout)
                .map(|r| r.html)
                .map_err(|e| serde_json::json!({"statusCode": e.status, "error": e}).to_string()),
            Work::Batch(jobs) => {
                let results: Vec<JobResult> = jobs
                    .iter()
                    .map(|(token, name, props)| {
                        let started = Instant::now();
                        let outcome =
                            engine.render(name.as_deref().unwrap_or(""), props, None, timeout);
                        JobResult {
                            token: token.clone(),
                            name: name.clone(),
                            outcome,
                            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                            markup: None,
                        }
                    })
                    .collect();
                Ok(protocol::batch_response(&results))
            }
        }
    };
    if args.repeat == 1 {
        return once(&mut engine);
    }
    let mut out = String::new();
    let mut samples = Vec::with_capacity(args.repeat as usize);
    let started = Instant::now();
    for _ in 0..args.repeat {
        let t = Instant::now();
        if fresh {
            // What a worker does after each request in request isolation.
            drop(engine);
            engine = recipe.start().map_err(|e| e.to_json())?;
        }
        out = once(&mut engine)?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let total = started.elapsed().as_secs_f64();
    samples.sort_by(f64::total_cmp);
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    eprintln!(
        "{}",
        serde_json::json!({
            "component": args.name,
            "batch": args.batch,
            "renders": args.repeat,
            "seconds": total,
            "renders_per_s": args.repeat as f64 / total,
            "mean_ms": total * 1000.0 / args.repeat as f64,
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "output_bytes": out.len(),
        })
    );
    Ok(out)
}

fn read_props(path: Option<&Path>) -> ssrd_worker::Result<Vec<u8>> {
    match path {
        None => Ok(b"{}".to_vec()),
        Some(p) if p == Path::new("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| ssrd_worker::Error::io("reading props from stdin", e))?;
            Ok(buf)
        }
        Some(p) => std::fs::read(p)
            .map_err(|e| ssrd_worker::Error::io(format!("reading {}", p.display()), e)),
    }
}
