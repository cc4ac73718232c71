//! `ssrd render NAME [PROPS]`: one render, no HTTP, HTML to stdout.
//!
//! It renders the way a worker does: the worker's V8 flags, its boot and
//! warm-up, and each render handed to the worker's own render thread
//! (`ssrd_worker::render`: the request budget, the skip after an exhausted
//! heap, the fresh isolate per request under `request` isolation, the
//! retire checks). Only HTTP is left out.
//!
//! Failures print the job's error as JSON to stderr and exit 1. With
//! `--repeat N` it is also the in-isolate throughput benchmark: N requests
//! in a loop, figures as one JSON line on stderr — the ceiling a whole tier
//! on the machine is measured against. `--batch FILE` does the same for
//! every job of a Hypernova batch body (printing the batch response).

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::value::RawValue;
use ssrd_worker::event_sink::EventSink;
use ssrd_worker::job::JobError;
use ssrd_worker::protocol::{self, ErrorWire, JobResult};
use ssrd_worker::render::{self, JobRequest, Origin, RenderQueue, RenderRequest};
use ssrd_worker::slate::Slate;
use ssrd_worker::{boot, Isolation};

use crate::cli::RenderArgs;

pub fn run(args: RenderArgs) -> i32 {
    match render(&args) {
        Ok(out) => {
            // A closed stdout (e.g. piped into `head`) is not an error worth a panic.
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{out}");
            0
        }
        Err(failed) => {
            eprintln!("{failed}");
            1
        }
    }
}

/// Why `ssrd render` has nothing to print on stdout.
enum Failed {
    /// The worker crate refused: unreadable props, a bundle that cannot
    /// boot, unknown V8 flags, a render thread that stopped (printed as
    /// the worker's error JSON).
    Worker(ssrd_worker::Error),
    /// The one component's render failed (printed as its status and
    /// error, as /batch would show them).
    Job(JobError),
    /// The `--batch` file could not be read.
    ReadBatch {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A job of the `--batch` file is malformed: nothing is rendered.
    BadJob {
        /// The job's token.
        token: String,
        /// What is wrong with it.
        message: String,
    },
    /// Neither a component name nor `--batch` was given.
    NothingToRender,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failed::Worker(e) => f.write_str(&e.to_json()),
            Failed::Job(e) => {
                let status = protocol::status_code(e);
                let json = serde_json::json!({"statusCode": status, "error": ErrorWire::from(e)});
                write!(f, "{json}")
            }
            Failed::ReadBatch { path, source } => write!(f, "reading {}: {source}", path.display()),
            Failed::BadJob { token, message } => write!(f, "job {token:?}: {message}"),
            Failed::NothingToRender => f.write_str("give a component NAME or --batch FILE"),
        }
    }
}

impl From<ssrd_worker::Error> for Failed {
    fn from(e: ssrd_worker::Error) -> Failed {
        Failed::Worker(e)
    }
}

/// What each request renders: a component with props, or a whole batch
/// body (parsed again for each request, as a worker parses each one).
enum Work {
    /// `ssrd render NAME [PROPS]`.
    One {
        /// The component.
        name: String,
        /// Its props, checked once.
        props: Box<RawValue>,
    },
    /// `ssrd render --batch FILE`: the body as read.
    Batch(Vec<u8>),
}

impl Work {
    fn from_args(args: &RenderArgs) -> Result<Work, Failed> {
        match (&args.batch, &args.name) {
            (Some(path), _) => {
                let body = std::fs::read(path).map_err(|source| Failed::ReadBatch {
                    path: path.clone(),
                    source,
                })?;
                // A malformed job stops the command before anything renders.
                for job in protocol::parse_batch(&body)? {
                    if let Err(e) = job.spec {
                        return Err(Failed::BadJob {
                            token: job.token,
                            message: e.message_text(),
                        });
                    }
                }
                Ok(Work::Batch(body))
            }
            (None, Some(name)) => {
                let props = read_props(args.props.as_deref())?;
                Ok(Work::One {
                    name: name.clone(),
                    props: protocol::parse_props(&props)?,
                })
            }
            (None, None) => Err(Failed::NothingToRender),
        }
    }

    /// Renders one request on the render thread and returns what is printed.
    async fn once(&self, queue: &RenderQueue) -> Result<String, Failed> {
        let (tokens, jobs): (Vec<String>, Vec<JobRequest>) = match self {
            Work::One { name, props } => {
                let job = RenderRequest {
                    name: name.clone(),
                    props: props.clone(),
                    metadata: None,
                };
                (Vec::new(), vec![Ok(job)])
            }
            Work::Batch(body) => protocol::split_tokens(protocol::parse_batch(body)?),
        };
        let reply = queue.render(jobs, Origin::default(), String::new()).await?;
        match self {
            Work::Batch(_) => {
                let results: Vec<JobResult> = tokens
                    .into_iter()
                    .zip(reply.results)
                    .map(|(token, done)| JobResult::new(token, done, None))
                    .collect();
                Ok(protocol::batch_response(&results))
            }
            Work::One { .. } => {
                let done = reply.results.into_iter().next().ok_or_else(|| {
                    ssrd_worker::Error::new(
                        ssrd_worker::ErrorKind::Internal,
                        "the render thread returned no result",
                    )
                })?;
                done.outcome.map(|r| r.html).map_err(Failed::Job)
            }
        }
    }
}

fn render(args: &RenderArgs) -> Result<String, Failed> {
    let work = Work::from_args(args)?;
    // The worker's boot: bundle, contract check and, when measuring, the
    // same warm-up a worker does before it reports ready.
    let rounds = if args.repeat > 1 {
        args.engine.warmup_rounds
    } else {
        0
    };
    // Fresh isolates start from a snapshot, as a worker's do.
    let snapshot = (args.engine.isolation == Isolation::Request)
        .then(|| std::env::temp_dir().join(format!("ssrd-render-{}.snap", std::process::id())));
    let config = args.engine.boot_config(snapshot.clone(), rounds);
    // The worker's allocator settings, so the ceiling is the worker's.
    ssrd_worker::malloc::tune();
    boot::set_v8_flags(&config, &args.engine.v8_flags)?;
    let started = render::start(
        config,
        args.engine.request_limits(),
        Slate::default(),
        EventSink::disabled(),
    );
    if let Some(path) = &snapshot {
        let _ = std::fs::remove_file(path);
    }
    let (queue, _boot, _retire) = started?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ssrd_worker::Error::io("starting a runtime", e))?;
    runtime.block_on(repeat(&work, &queue, args))
}

/// Renders `args.repeat` requests; with more than one, prints the figures.
async fn repeat(work: &Work, queue: &RenderQueue, args: &RenderArgs) -> Result<String, Failed> {
    if args.repeat == 1 {
        return work.once(queue).await;
    }
    let mut out = String::new();
    let mut samples = Vec::with_capacity(args.repeat as usize);
    let started = Instant::now();
    for _ in 0..args.repeat {
        let t = Instant::now();
        out = work.once(queue).await?;
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
