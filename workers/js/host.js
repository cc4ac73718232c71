// ssrd host script: runs once per isolate, before the bundle.
//
// 1. Installs the web APIs that server-side rendering code commonly touches,
//    taken from deno_web (console, timers, URL, TextEncoder/TextDecoder,
//    atob/btoa, structuredClone, performance, MessageChannel, events and
//    AbortController). Nothing here reaches files, the network or processes.
// 2. Defines the render glue the worker calls for every job. The glue is the
//    whole bundle contract seen from the host: it calls
//    `globalThis.ssrd.render(name, props, context)` and turns whatever comes
//    back (a string, `{html, meta}`, a promise of either, or a throw) into
//    one of three shapes the Rust side reads without guessing:
//      - a string: the HTML, with empty meta (the fast, common case);
//      - `{html, meta}`: HTML plus meta serialised to a JSON string;
//      - `{statusCode, error}`: a failed job, error serialised to JSON.
//    A promise resolves to one of the same three.
import { core, primordials } from "ext:core/mod.js";

const {
  ArrayIsArray,
  Error,
  JSONParse,
  JSONStringify,
  NumberIsInteger,
  ObjectDefineProperty,
  ObjectPrototypeIsPrototypeOf,
  ErrorPrototype,
  String,
  StringPrototypeSplit,
  TypeError,
} = primordials;

const load = (specifier) => core.loadExtScript(specifier);

const consoleMod = load("ext:deno_web/01_console.js");
const url = load("ext:deno_web/00_url.js");
const timers = load("ext:deno_web/02_timers.js");
const encoding = load("ext:deno_web/08_text_encoding.js");
const base64 = load("ext:deno_web/05_base64.js");
const clone = load("ext:deno_web/02_structured_clone.js");
const performanceMod = load("ext:deno_web/15_performance.js");
const domException = load("ext:deno_web/01_dom_exception.js");
const event = load("ext:deno_web/02_event.js");
const abort = load("ext:deno_web/03_abort_signal.js");
const messagePort = load("ext:deno_web/13_message_port.js");

function writable(value) {
  return { __proto__: null, value, writable: true, enumerable: false, configurable: true };
}

const globals = {
  // console output goes to the worker's stderr: stdout is reserved for the
  // worker's ready line, which the supervisor reads.
  console: new consoleMod.Console((msg, _level) => core.print(msg, true)),
  URL: url.URL,
  URLSearchParams: url.URLSearchParams,
  setTimeout: timers.setTimeout,
  clearTimeout: timers.clearTimeout,
  setInterval: timers.setInterval,
  clearInterval: timers.clearInterval,
  TextEncoder: encoding.TextEncoder,
  TextDecoder: encoding.TextDecoder,
  atob: base64.atob,
  btoa: base64.btoa,
  structuredClone: clone.structuredClone,
  performance: performanceMod.performance,
  DOMException: domException.DOMException,
  Event: event.Event,
  EventTarget: event.EventTarget,
  AbortController: abort.AbortController,
  AbortSignal: abort.AbortSignal,
  MessageChannel: messagePort.MessageChannel,
  MessagePort: messagePort.MessagePort,
};
for (const name in globals) {
  ObjectDefineProperty(globalThis, name, writable(globals[name]));
}
// Some libraries feature-detect `self` or `window` to pick a web build.
ObjectDefineProperty(globalThis, "self", writable(globalThis));

// --- errors ---------------------------------------------------------------

// Hypernova's error shape: `stack` is the JS stack split at each "\n    ",
// so frames read "at …". A thrown non-Error keeps the value as `message`.
function describe(err) {
  if (err !== null && typeof err === "object" && ObjectPrototypeIsPrototypeOf(ErrorPrototype, err)) {
    const stack = typeof err.stack === "string" ? err.stack : `${err.name}: ${err.message}`;
    return { name: String(err.name), message: String(err.message), stack: StringPrototypeSplit(stack, "\n    ") };
  }
  return { name: "Error", type: "Error", message: err, stack: [""] };
}

function failure(err) {
  const status = err !== null && typeof err === "object" ? err.statusCode : undefined;
  const statusCode = NumberIsInteger(status) && status >= 400 && status <= 599 ? status : 500;
  let error;
  try {
    error = JSONStringify(describe(err));
  } catch {
    // e.g. a thrown BigInt or a cyclic object: fall back to its string form.
    error = JSONStringify({ name: "Error", type: "Error", message: String(err), stack: [""] });
  }
  return { statusCode, error };
}

function settle(out) {
  if (typeof out === "string") return out;
  if (out !== null && typeof out === "object" && typeof out.html === "string") {
    const meta = out.meta === undefined || out.meta === null ? "{}" : JSONStringify(out.meta);
    return { html: out.html, meta };
  }
  return failure(new TypeError(`ssrd.render() must return a string or {html, meta}; got ${out === null ? "null" : typeof out}`));
}

// --- render glue ----------------------------------------------------------

// Called by the worker for every job. `propsJson` is the job's `data`, raw
// JSON text (parsing it here is faster than converting through Rust);
// `metadataJson` is the job's `metadata` or undefined.
function renderJob(name, propsJson, metadataJson) {
  let out;
  try {
    const api = globalThis.ssrd;
    const props = JSONParse(propsJson);
    const context = { metadata: metadataJson === undefined ? {} : JSONParse(metadataJson) };
    out = api.render(name, props, context);
  } catch (err) {
    return failure(err);
  }
  if (out !== null && typeof out === "object" && typeof out.then === "function") {
    return out.then(settle, failure);
  }
  return settle(out);
}

// Checks the bundle honoured the contract; returns an error message or "".
function checkContract() {
  const api = globalThis.ssrd;
  if (api === null || typeof api !== "object") {
    return "the bundle did not set globalThis.ssrd (see README: Bundle contract)";
  }
  if (typeof api.render !== "function") {
    return "globalThis.ssrd.render is not a function (see README: Bundle contract)";
  }
  if (api.warmup !== undefined && !ArrayIsArray(api.warmup)) {
    return "globalThis.ssrd.warmup must be an array of {name, props}";
  }
  return "";
}

// The warm-up jobs the bundle asked for, as [name, propsJson] pairs.
function warmupJobs() {
  const jobs = globalThis.ssrd.warmup ?? [];
  const out = [];
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i];
    if (job === null || typeof job !== "object" || typeof job.name !== "string") {
      throw new Error(`globalThis.ssrd.warmup[${i}] must be {name, props}`);
    }
    out.push([job.name, JSONStringify(job.props ?? {})]);
  }
  return out;
}

// Bundle code gets web APIs, not the host's internals. deno_core itself
// needs `Deno.core` on the global object while it starts an isolate from a
// snapshot, so the internals are hidden before the bundle runs, put back
// just before a snapshot is taken, and hidden again once started.
let internals = null;

function hideInternals() {
  if (internals === null) {
    internals = { Deno: globalThis.Deno, __bootstrap: globalThis.__bootstrap };
  }
  delete globalThis.Deno;
  delete globalThis.__bootstrap;
}

function restoreInternals() {
  if (internals !== null) {
    globalThis.Deno = internals.Deno;
    globalThis.__bootstrap = internals.__bootstrap;
    internals = null;
  }
}

// Runs after the isolate starts, snapshot or not: per-process state that a
// snapshot must not freeze.
function onStart() {
  hideInternals();
  performanceMod.setTimeOrigin();
}

ObjectDefineProperty(
  globalThis,
  "__ssrdHost",
  {
    __proto__: null,
    value: { renderJob, checkContract, warmupJobs, onStart, hideInternals, restoreInternals },
    enumerable: false,
  },
);
