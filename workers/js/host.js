// ssrd host script: runs once per isolate, before the bundle.
//
// 1. Installs the web APIs that server-side rendering code commonly touches,
//    taken from deno_web (console, timers, URL, TextEncoder/TextDecoder and
//    their streams, atob/btoa, structuredClone, performance, MessageChannel,
//    events, AbortController, web streams), plus ssrd's own Headers/Request/
//    Response (fetch_classes.js) and the little of Node that bundles built
//    for it touch (`process.env`, `process.nextTick`, `setImmediate`, and a
//    `require` that explains itself). docs/worker.md, "Web APIs and Node
//    compatibility", says where each comes from. Nothing here reaches files,
//    the network or processes.
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
import { fetch, Headers, Request, Response } from "ext:ssrd_host/fetch_classes.js";

const {
  ArrayIsArray,
  ArrayPrototypePush,
  DateNow,
  Error,
  JSONParse,
  JSONStringify,
  NumberIsInteger,
  ObjectFreeze,
  ObjectDefineProperty,
  ObjectGetPrototypeOf,
  ObjectPrototypeIsPrototypeOf,
  ErrorPrototype,
  queueMicrotask,
  RangeError,
  ReflectApply,
  SafeSet,
  SafeSetIterator,
  SetPrototypeAdd,
  SetPrototypeClear,
  SetPrototypeHas,
  String,
  StringPrototypeEndsWith,
  StringPrototypeSlice,
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

// --- what a job leaves behind ----------------------------------------------

// Timers and message channels a job created. When the job's answer is in,
// `afterJob` cancels and closes them all: nothing a request queued ever runs
// during another request.
const jobTimers = new SafeSet();
const jobPorts = new SafeSet();

function setTimeout(callback, delay = 0, ...args) {
  const id = ReflectApply(timers.setTimeout, undefined, [callback, delay, ...args]);
  SetPrototypeAdd(jobTimers, id);
  return id;
}

function setInterval(callback, delay = 0, ...args) {
  const id = ReflectApply(timers.setInterval, undefined, [callback, delay, ...args]);
  SetPrototypeAdd(jobTimers, id);
  return id;
}

// Node's setImmediate: "soon, after what is already queued", which a
// zero-delay timer is here (there is no I/O phase to run before). On the
// same tracked timers, so it never outlives its job either.
function setImmediate(callback, ...args) {
  if (typeof callback !== "function") throw new TypeError("setImmediate: callback is not a function");
  return setTimeout(callback, 0, ...args);
}

// Only a job's own channels are closed after it: one made while the bundle
// loads is the bundle's lasting state (react-dom's server.browser build
// keeps its scheduler on one), and closing it after the first job would
// silently stop every later job's scheduled work.
let inJob = false;

class MessageChannel extends messagePort.MessageChannel {
  constructor() {
    super();
    if (inJob) {
      SetPrototypeAdd(jobPorts, this.port1);
      SetPrototypeAdd(jobPorts, this.port2);
    }
  }
}

// AbortSignal.timeout runs on an internal timer the wrappers above do not
// see: rebuild it on a tracked one.
function abortSignalTimeout(millis) {
  const controller = new abort.AbortController();
  setTimeout(() => {
    controller.abort(
      new domException.DOMException("The operation was aborted due to timeout", "TimeoutError"),
    );
  }, millis);
  return controller.signal;
}
ObjectDefineProperty(abort.AbortSignal, "timeout", writable(abortSignalTimeout));

// Called by the worker once a job's answer is in (under a short deadline of
// its own: closing a port can run the bundle's message handlers).
function afterJob() {
  inJob = false;
  for (const id of new SafeSetIterator(jobTimers)) {
    ReflectApply(timers.clearTimeout, undefined, [id]);
  }
  SetPrototypeClear(jobTimers);
  for (const port of new SafeSetIterator(jobPorts)) {
    port.close();
  }
  SetPrototypeClear(jobPorts);
  consoleBudget.lines = 0;
  consoleBudget.bytes = 0;
  consoleBudget.noted = false;
}

// A rejection nobody handled is the bundle's bug, not a reason to fail
// whichever job happens to poll the event loop next: log it and go on.
core.setUnhandledPromiseRejectionHandler((_promise, reason) => {
  logLine("error", "unhandled promise rejection in the bundle", String(reason?.stack ?? reason));
  return true;
});

// --- console ----------------------------------------------------------------

// console output becomes JSON log lines on the worker's stderr, one per
// call: it cannot pass for the worker's own log lines, and never reaches
// the supervisor's event channel. Each job may write 200 lines or 64 KiB;
// the rest is dropped, with one note.
const CONSOLE_LINES = 200;
const CONSOLE_BYTES = 64 * 1024;
const consoleBudget = { lines: 0, bytes: 0, noted: false };

function logLine(level, msg, text) {
  core.print(JSONStringify({ ts: DateNow() / 1000, level, msg, text }) + "\n", true);
}

function printConsole(text, level) {
  consoleBudget.lines++;
  consoleBudget.bytes += text.length;
  if (consoleBudget.lines > CONSOLE_LINES || consoleBudget.bytes > CONSOLE_BYTES) {
    if (!consoleBudget.noted) {
      consoleBudget.noted = true;
      logLine("warn", "bundle console", "(this job's console output passed 200 lines / 64 KiB; the rest is dropped)");
    }
    return;
  }
  const line = StringPrototypeEndsWith(text, "\n") ? StringPrototypeSlice(text, 0, -1) : text;
  logLine(level > 1 ? "warn" : "info", "bundle console", line);
}

// --- memory outside the heap ------------------------------------------------

// Ordinary ArrayBuffers are counted by the isolate's allocator (its budget
// is the heap limit, see js_runtime.rs). Resizable and growable buffers
// reserve address space and commit it as they grow, outside that count:
// their growth is capped instead.
const GROWABLE_LIMIT = 64 * 1024 * 1024;
for (const ctor of [globalThis.ArrayBuffer, globalThis.SharedArrayBuffer]) {
  if (ctor === undefined) continue;
  for (const method of ["resize", "grow"]) {
    const original = ctor.prototype[method];
    if (typeof original !== "function") continue;
    ObjectDefineProperty(ctor.prototype, method, writable(function (newLength) {
      if (newLength > GROWABLE_LIMIT) {
        throw new RangeError(`a resizable buffer may not grow past ${GROWABLE_LIMIT} bytes in ssrd`);
      }
      return ReflectApply(original, this, [newLength]);
    }));
  }
}

// --- Node ------------------------------------------------------------------

// What bundles built for Node, or libraries written for it, reach for at
// load and render time (measured on react-dom, react-router,
// styled-components, Emotion, react-query, react-intl, react-helmet-async;
// docs/worker.md, "Web APIs and Node compatibility"): `process.env.X`
// reads guarded by `typeof process`, and `process.nextTick`. So `process`
// is a frozen object with exactly that. No `version`, `versions` or
// `platform`: code that finds `process.versions.node` decides it runs in
// Node and requires Node's built-ins, which is the one thing a render
// worker cannot give.
function nodeProcess() {
  function nextTick(callback, ...args) {
    if (typeof callback !== "function") throw new TypeError("process.nextTick: callback is not a function");
    // A microtask: it runs before the job's answer is read, within its
    // deadline, never in a later job (the worker drains microtasks after
    // every job).
    queueMicrotask(() => ReflectApply(callback, undefined, args));
  }
  return ObjectFreeze({
    env: ObjectFreeze({ NODE_ENV: "production" }),
    nextTick,
  });
}

// A bundle that still calls `require` (esbuild's "Dynamic require of ..."
// shim calls this one when it exists) learns what to do about it.
function require(specifier) {
  throw new TypeError(
    `require(${JSONStringify(String(specifier))}): the ssrd render worker is not Node and has no modules to load. ` +
      "Bundle everything into the one script, built for the web rather than Node " +
      '(esbuild: platform "neutral" with conditions ["edge-light", "workerd", "worker", "module"] and mainFields ["module", "main"]; ' +
      'README, "The bundle contract"), and pass data in props.',
  );
}

const globals = {
  console: new consoleMod.Console(printConsole),
  URL: url.URL,
  URLSearchParams: url.URLSearchParams,
  setTimeout,
  clearTimeout: timers.clearTimeout,
  setInterval,
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
  MessageChannel,
  MessagePort: messagePort.MessagePort,
  // (The web streams are installed below, on first use.)
  TextEncoderStream: encoding.TextEncoderStream,
  TextDecoderStream: encoding.TextDecoderStream,
  // The fetch standard's classes, ssrd's own; fetch itself rejects.
  Headers,
  Request,
  Response,
  fetch,
  // Node, the little bundles built for it touch (see below).
  process: nodeProcess(),
  setImmediate,
  clearImmediate: timers.clearTimeout,
  require,
};
for (const name in globals) {
  ObjectDefineProperty(globalThis, name, writable(globals[name]));
}
// Web streams (React's renderToReadableStream and prerender, Response
// bodies) come from deno_web's 06_streams.js, a 200 KB script: evaluated
// in every isolate it costs 1-2 MiB of heap and up to ~4 MiB of RSS per worker
// (docs/worker.md), which bundles that only call renderToString would pay
// for nothing. So each name starts as an accessor that evaluates the
// script on first use and then turns every stream name into a plain data
// property; assigning one first (a polyfill) simply replaces it. A
// snapshot gets them evaluated (beforeSnapshot).
const STREAM_GLOBALS = [
  "ReadableStream", "ReadableStreamDefaultReader", "ReadableStreamBYOBReader",
  "ReadableStreamBYOBRequest", "ReadableStreamDefaultController",
  "ReadableByteStreamController", "WritableStream", "WritableStreamDefaultWriter",
  "WritableStreamDefaultController", "TransformStream",
  "TransformStreamDefaultController", "ByteLengthQueuingStrategy",
  "CountQueuingStrategy",
];
const lazyStreamGetters = new SafeSet();
function installStreams() {
  const streams = load("ext:deno_web/06_streams.js");
  for (const name of STREAM_GLOBALS) {
    const desc = primordials.ObjectGetOwnPropertyDescriptor(globalThis, name);
    // Only names still holding their lazy accessor: not a bundle's own.
    if (desc !== undefined && SetPrototypeHas(lazyStreamGetters, desc.get)) {
      ObjectDefineProperty(globalThis, name, writable(streams[name]));
    }
  }
  return streams;
}
for (const name of STREAM_GLOBALS) {
  const get = () => installStreams()[name];
  SetPrototypeAdd(lazyStreamGetters, get);
  ObjectDefineProperty(globalThis, name, {
    __proto__: null,
    get,
    set(value) {
      ObjectDefineProperty(globalThis, name, writable(value));
    },
    enumerable: false,
    configurable: true,
  });
}

// Some libraries feature-detect `self` or `window` to pick a web build.
ObjectDefineProperty(globalThis, "self", writable(globalThis));

// --- errors ---------------------------------------------------------------

// Hypernova's error shape: `stack` is the JS stack split at each "\n    ",
// so frames read "at ...". A thrown non-Error keeps the value as `message`.
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
  inJob = true;
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

// --- frozen intrinsics ------------------------------------------------------

// After the bundle is evaluated (its polyfills are in by then), the
// language's own objects are frozen, so no render can change them for the
// renders after it: `Object.prototype.x = 1` or `Array.prototype.join = f`
// fails (a TypeError in strict code), and the global names of the
// constructors cannot be rebound. What still persists between renders is
// the bundle's own state: its module variables and whatever it puts on
// globalThis (docs/worker.md, Isolation).
//
// Freezing a prototype would break the common `err.name = "X"` or
// `obj.toString = f` on instances (an assignment to a property that is
// read-only on the prototype throws); those few properties are turned into
// accessors first, whose setter defines the property on the instance.
//
// Only where overriding is common, and never `constructor` or `toString` on
// Array, Promise, RegExp, Map or Set prototypes: V8 watches those (species
// and iteration "protectors"), and an accessor there takes every
// `map`/`then`/... off its fast path (measured: taming those cost 7 % of
// renders/s on the large batch and 13 % on the small one; this set costs
// nothing measurable).
const ERROR_PROTOTYPE_KEYS = ["constructor", "name", "message", "toString"];
const TAMED = [
  [primordials.ObjectPrototype, ["constructor", "toString", "toLocaleString", "valueOf"]],
  [primordials.FunctionPrototype, ["toString"]],
];

const INTRINSIC_NAMES = [
  "Object", "Function", "Array", "String", "Number", "Boolean", "Symbol", "BigInt",
  "Date", "RegExp", "Error", "AggregateError", "EvalError", "RangeError",
  "ReferenceError", "SyntaxError", "TypeError", "URIError", "Map", "Set",
  "WeakMap", "WeakSet", "WeakRef", "FinalizationRegistry", "Promise", "Proxy",
  "Reflect", "JSON", "Math", "Atomics", "ArrayBuffer", "SharedArrayBuffer",
  "DataView", "Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array",
  "Uint16Array", "Int32Array", "Uint32Array", "Float32Array", "Float64Array",
  "BigInt64Array", "BigUint64Array", "Intl", "Iterator", "escape", "unescape",
  "isFinite", "isNaN", "parseFloat", "parseInt", "decodeURI", "decodeURIComponent",
  "encodeURI", "encodeURIComponent",
];

const ERROR_NAMES = [
  "Error", "AggregateError", "EvalError", "RangeError", "ReferenceError",
  "SyntaxError", "TypeError", "URIError",
];

function tame(obj, key) {
  const desc = primordials.ObjectGetOwnPropertyDescriptor(obj, key);
  if (desc === undefined || !("value" in desc) || !desc.configurable) return;
  let value = desc.value;
  ObjectDefineProperty(obj, key, {
    __proto__: null,
    get() {
      return value;
    },
    set(newValue) {
      if (this === obj) {
        throw new TypeError(`ssrd froze ${String(key)} here: renders may not change built-in objects`);
      }
      ObjectDefineProperty(this, key, {
        __proto__: null, value: newValue, writable: true, enumerable: true, configurable: true,
      });
    },
    enumerable: desc.enumerable,
    configurable: false,
  });
}

function lockdown() {
  const seen = new SafeSet();
  const pending = [];
  const add = (v) => {
    if ((typeof v === "object" && v !== null) || typeof v === "function") {
      if (!SetPrototypeHas(seen, v)) {
        SetPrototypeAdd(seen, v);
        ArrayPrototypePush(pending, v);
      }
    }
  };
  for (const name of INTRINSIC_NAMES) {
    const desc = primordials.ObjectGetOwnPropertyDescriptor(globalThis, name);
    if (desc === undefined) continue;
    add(desc.value);
    ObjectDefineProperty(globalThis, name, { __proto__: null, writable: false, configurable: false });
  }
  // Intrinsics no global names: iterator and generator prototypes, the
  // typed-array base, async functions.
  add(ObjectGetPrototypeOf([][primordials.SymbolIterator]()));
  add(ObjectGetPrototypeOf(new Map()[primordials.SymbolIterator]()));
  add(ObjectGetPrototypeOf(new Set()[primordials.SymbolIterator]()));
  add(ObjectGetPrototypeOf(""[primordials.SymbolIterator]()));
  add(ObjectGetPrototypeOf(/x/[primordials.SymbolMatchAll]("")));
  add(ObjectGetPrototypeOf(function* () {}));
  add(ObjectGetPrototypeOf(async function () {}));
  add(ObjectGetPrototypeOf(async function* () {}));
  add(ObjectGetPrototypeOf(Int8Array));
  while (pending.length > 0) {
    const obj = primordials.ArrayPrototypePop(pending);
    add(ObjectGetPrototypeOf(obj));
    for (const key of primordials.ReflectOwnKeys(obj)) {
      const desc = primordials.ObjectGetOwnPropertyDescriptor(obj, key);
      if ("value" in desc) add(desc.value);
      else {
        add(desc.get);
        add(desc.set);
      }
    }
  }
  for (const [obj, keys] of TAMED) {
    for (const key of keys) tame(obj, key);
  }
  for (const name of ERROR_NAMES) {
    const ctor = primordials.ObjectGetOwnPropertyDescriptor(globalThis, name)?.value;
    if (ctor === undefined) continue;
    for (const key of ERROR_PROTOTYPE_KEYS) tame(ctor.prototype, key);
  }
  for (const obj of new SafeSetIterator(seen)) {
    primordials.ObjectFreeze(obj);
  }
}

// Runs just before a snapshot is taken: what is loaded lazily must be in
// it, because an isolate started from a snapshot cannot load deno_web's
// scripts any more.
function beforeSnapshot() {
  installStreams();
}

// Runs after the isolate starts, snapshot or not: per-process state that a
// snapshot must not freeze.
function onStart() {
  performanceMod.setTimeOrigin();
}

// Handed to the worker, then moved out of the bundle's reach (sandbox.rs)
// before any bundle code runs: everything above is captured in closures.
ObjectDefineProperty(
  globalThis,
  "__ssrdHost",
  {
    __proto__: null,
    value: { renderJob, checkContract, warmupJobs, onStart, afterJob, lockdown, beforeSnapshot },
    enumerable: false,
    configurable: true,
  },
);
