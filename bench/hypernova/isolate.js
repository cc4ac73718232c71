// One Node isolate doing, in a loop, what ssrd's in-isolate ceiling does
// (`ssrd render --batch FILE --repeat N`): take a Hypernova batch body as
// text, parse it, render every job with the same components as A18 serves
// (js-bundle/dist/node.cjs, React's Node server build), and write the
// batch answer as JSON bytes. No HTTP, no Hypernova server around it: the
// Node side of bench/isolate_vs_node.py, so this is the least a Node
// server must do per request (Hypernova itself adds its plugin lifecycle).
//
//     node isolate.js BATCH_FILE REPEAT
//     node isolate.js BATCH_FILE --print
//
// Prints one JSON line on stderr, in `ssrd render --repeat`'s form:
// {"renders_per_s", "mean_ms", "p99_ms", "output_bytes"}; with --print,
// the answer once on stdout instead (to check both sides render the same
// HTML before they are timed).
const fs = require("fs");
const path = require("path");
const { getComponent } = require(path.resolve(__dirname, "../../js-bundle/dist/node.cjs"));

const [file, repeatArg] = process.argv.slice(2);
const body = fs.readFileSync(file, "utf8");
const repeat = Number(repeatArg);

function answer(text) {
  const jobs = JSON.parse(text);
  const results = {};
  for (const [key, job] of Object.entries(jobs)) {
    const started = process.hrtime.bigint();
    const render = getComponent(job.name);
    const html = render(job.data);
    results[key] = {
      name: job.name, html, meta: {}, duration: Number(process.hrtime.bigint() - started) / 1e6,
      statusCode: 200, success: true, error: null,
    };
  }
  return Buffer.from(JSON.stringify({ success: true, error: null, results }));
}

function timed() {
  // Warm-up, as ssrd's worker renders its warm-up jobs before serving.
  for (let i = 0; i < 10; i++) answer(body);
  const times = [];
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < repeat; i++) {
    const s = process.hrtime.bigint();
    bytes = answer(body).length;
    times.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const total = Number(process.hrtime.bigint() - t0) / 1e9;
  times.sort((a, b) => a - b);
  process.stderr.write(JSON.stringify({
    renders_per_s: repeat / total,
    mean_ms: times.reduce((a, b) => a + b, 0) / repeat,
    p99_ms: times[Math.min(repeat - 1, Math.floor(repeat * 0.99))],
    output_bytes: bytes,
  }) + "\n");
}

// Written without exiting: a pipe takes Node's output asynchronously.
if (repeatArg === "--print") process.stdout.write(answer(body));
else timed();
