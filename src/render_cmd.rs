//! `ssrd render NAME [PROPS]`: one render, no HTTP, HTML to stdout.
//!
//! Failures print the job's error as JSON to stderr and exit 1. With
//! `--repeat N` it is also the in-isolate throughput benchmark: N renders in
//! a loop, no HTTP, figures as one JSON line on stderr.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use ssrd_worker::protocol;
use ssrd_worker::{Bundle, Engine, EngineOptions};

use crate::cli::RenderArgs;

pub fn run(args: RenderArgs) -> i32 {
    match render(&args) {
        Ok(html) => {
            println!("{html}");
            0
        }
        Err(json) => {
            eprintln!("{json}");
            1
        }
    }
}

fn render(args: &RenderArgs) -> Result<String, String> {
    let props = read_props(args.props.as_deref()).map_err(|e| e.to_json())?;
    let props = protocol::parse_props(&props).map_err(|e| e.to_json())?;
    ssrd_worker::js_runtime::set_v8_flags(&args.engine.v8_flags).map_err(|e| e.to_json())?;
    let bundle = Bundle::load(&args.engine.bundle).map_err(|e| e.to_json())?;
    let mut engine = Engine::new(
        &bundle,
        EngineOptions {
            heap_limit_bytes: args.engine.heap_limit_bytes(),
            snapshot: None,
        },
    )
    .map_err(|e| e.to_json())?;
    let render = |engine: &mut Engine| {
        engine
            .render(&args.name, props.get(), None, args.engine.render_timeout())
            .map(|r| r.html)
            .map_err(|e| serde_json::json!({"statusCode": e.status, "error": e}).to_string())
    };
    if args.repeat == 1 {
        return render(&mut engine);
    }
    // Same warm-up a worker does before it reports ready.
    for (name, props) in engine.warmup_jobs().map_err(|e| e.to_json())? {
        for _ in 0..3 {
            let _ = engine.render(&name, &props, None, args.engine.render_timeout());
        }
    }
    let mut html = String::new();
    let mut samples = Vec::with_capacity(args.repeat as usize);
    let started = Instant::now();
    for _ in 0..args.repeat {
        let t = Instant::now();
        html = render(&mut engine)?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let total = started.elapsed().as_secs_f64();
    samples.sort_by(f64::total_cmp);
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    eprintln!(
        "{}",
        serde_json::json!({
            "component": args.name,
            "renders": args.repeat,
            "seconds": total,
            "renders_per_s": args.repeat as f64 / total,
            "mean_ms": total * 1000.0 / args.repeat as f64,
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "html_bytes": html.len(),
        })
    );
    Ok(html)
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
