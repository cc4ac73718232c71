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
  PromisePrototypeThen,
  RegExpPrototypeExec,
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

// postMessage(message, [arrayBuffer]): deno_web's transfer of ArrayBuffers
// needs host support this runtime does not set up (it failed with
// "serde_v8 error: invalid type; expected: integer, got: ArrayBuffer").
// So the buffers are sent as copies and then detached here, which is what
// a transfer looks like to both ends; ports in the list travel as before.
const portPostMessage = messagePort.MessagePort.prototype.postMessage;
const arrayBufferTransfer = ArrayBuffer.prototype.transfer;
const isArrayBuffer = (v) => {
  try {
    primordials.ArrayBufferPrototypeGetByteLength(v);
    return true;
  } catch {
    return false;
  }
};
ObjectDefineProperty(messagePort.MessagePort.prototype, "postMessage", writable(function postMessage(message, transferOrOptions) {
  const list = ArrayIsArray(transferOrOptions)
    ? transferOrOptions
    : transferOrOptions !== null && typeof transferOrOptions === "object" && ArrayIsArray(transferOrOptions.transfer)
      ? transferOrOptions.transfer
      : null;
  if (list === null || list.length === 0) {
    return ReflectApply(portPostMessage, this, [message, transferOrOptions]);
  }
  const buffers = [];
  const rest = [];
  for (let i = 0; i < list.length; i++) {
    ArrayPrototypePush(isArrayBuffer(list[i]) ? buffers : rest, list[i]);
  }
  const result = ReflectApply(portPostMessage, this, [message, rest]);
  for (let i = 0; i < buffers.length; i++) ReflectApply(arrayBufferTransfer, buffers[i], []);
  return result;
}));

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
  // State of the language and the web APIs that no freezing reaches,
  // reset so the next job cannot read it: RegExp's legacy statics
  // (RegExp.$1, lastMatch, input, leftContext, ...: a match on an empty
  // string empties them) and the performance timeline.
  RegExpPrototypeExec(EMPTY_MATCH, "");
  performanceClearMarks();
  performanceClearMeasures();
}
const EMPTY_MATCH = /(?:)/;
const performanceProto = ObjectGetPrototypeOf(performanceMod.performance);
const clearMarks = performanceProto.clearMarks;
const clearMeasures = performanceProto.clearMeasures;
const performanceClearMarks = () => ReflectApply(clearMarks, performanceMod.performance, []);
const performanceClearMeasures = () => ReflectApply(clearMeasures, performanceMod.performance, []);

// A rejection nobody handled is the bundle's bug, not a reason to fail
// whichever job happens to poll the event loop next: log it and go on.
//
// deno_core calls this while it polls the event loop, which may be during
// a later job: so it reads nothing that could run the bundle's code (no
// getter, no toString, no proxy trap), only what the value holds as data.
core.setUnhandledPromiseRejectionHandler((_promise, reason) => {
  logLine("error", "unhandled promise rejection in the bundle", inertDescription(reason));
  return true;
});

function inertDescription(value) {
  if (typeof value === "string") return clip(value, 1024);
  if (value === null || (typeof value !== "object" && typeof value !== "function")) {
    return typeof value === "symbol" ? "a Symbol" : clip(String(value), 1024);
  }
  if (core.isProxy(value)) return "a Proxy";
  const message = primordials.ObjectGetOwnPropertyDescriptor(value, "message");
  const text = message !== undefined && typeof message.value === "string" ? clip(message.value, 1024) : "";
  const kind = ObjectPrototypeIsPrototypeOf(ErrorPrototype, value) ? "an Error" : `a ${typeof value}`;
  return text === "" ? kind : `${kind}: ${text}`;
}

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

// Ordinary ArrayBuffers are counted by the isolate's allocator against the
// off-heap budget (as large as the heap limit; memory.rs). Resizable and
// growable buffers and WebAssembly memories are not: V8 reserves their
// address space itself and commits it as they grow. So each is charged to
// the same budget here, before V8 makes it (a resizable buffer at its
// maximum, a memory at its size and again at every grow() from JS), and
// refunded once it is garbage. Past the budget, the allocation fails with
// a RangeError, as an ordinary ArrayBuffer does. What this cannot see (a
// memory grown from inside Wasm code, a module's unexported memory) is
// bounded by the per-memory page cap (memory.rs) and the worker's RSS
// limit, which is checked while a render runs (memory_guard.rs).
const { op_ssrd_offheap_charge, op_ssrd_offheap_release } = core.ops;
const reflectConstruct = Reflect.construct;
// Captured before any bundle code runs (which may replace the globals).
const HostPromise = globalThis.Promise;
const HostProxy = globalThis.Proxy;
const offheapRefunds = new primordials.SafeFinalizationRegistry((bytes) => op_ssrd_offheap_release(bytes));
const chargedMemories = new primordials.SafeWeakSet();

function chargeOffheap(bytes, what) {
  if (bytes > 0 && !op_ssrd_offheap_charge(bytes)) {
    throw new RangeError(
      `${what}: ${bytes} bytes would pass this worker's budget for memory outside the JS heap (--heap-limit-mb)`,
    );
  }
}

function refundLater(obj, bytes) {
  if (bytes > 0) offheapRefunds.register(obj, bytes);
}

// A constructor whose instances are charged `bytesOf(args)` before V8 makes
// them. The prototype's `constructor` follows, so identity checks hold.
function chargedConstructor(name, owner, bytesOf) {
  const Original = owner[name];
  if (typeof Original !== "function") return;
  const Charged = new HostProxy(Original, {
    __proto__: null,
    construct(target, args, newTarget) {
      const bytes = bytesOf(args);
      chargeOffheap(bytes, `new ${name}`);
      let made;
      try {
        made = reflectConstruct(target, args, newTarget === Charged ? target : newTarget);
      } catch (err) {
        if (bytes > 0) op_ssrd_offheap_release(bytes);
        throw err;
      }
      refundLater(made, bytes);
      if (name === "Memory") primordials.WeakSetPrototypeAdd(chargedMemories, made);
      return made;
    },
  });
  ObjectDefineProperty(owner, name, writable(Charged));
  ObjectDefineProperty(Original.prototype, "constructor", writable(Charged));
}

// A size from options the caller passes (a getter runs once, here).
function maxBytes(args) {
  const options = args[1];
  if (options === null || typeof options !== "object") return 0;
  const max = options.maxByteLength;
  if (max === undefined) return 0;
  const n = +max;
  // V8 rejects what is not a safe length; charge nothing for it.
  return n >= 0 && n <= Number.MAX_SAFE_INTEGER ? primordials.MathFloor(n) : 0;
}
chargedConstructor("ArrayBuffer", globalThis, maxBytes);
chargedConstructor("SharedArrayBuffer", globalThis, maxBytes);

const WASM_PAGE = 65536;
const wasm = globalThis.WebAssembly;
if (wasm !== undefined) {
  chargedConstructor("Memory", wasm, (args) => {
    const d = args[0];
    const pages = d !== null && typeof d === "object" ? +d.initial : 0;
    return pages > 0 && pages <= 65536 ? primordials.MathFloor(pages) * WASM_PAGE : 0;
  });
  const memoryGrow = wasm.Memory.prototype.grow;
  ObjectDefineProperty(wasm.Memory.prototype, "grow", writable(function grow(delta) {
    const pages = +delta;
    const bytes = pages > 0 && pages <= 65536 ? primordials.MathFloor(pages) * WASM_PAGE : 0;
    chargeOffheap(bytes, "WebAssembly.Memory.prototype.grow");
    let before;
    try {
      before = ReflectApply(memoryGrow, this, [delta]);
    } catch (err) {
      if (bytes > 0) op_ssrd_offheap_release(bytes);
      throw err;
    }
    refundLater(this, bytes);
    return before;
  }));
  // Memories a module makes for itself and exports are charged once it is
  // instantiated; past the budget the instance is refused.
  const chargeExports = (instance) => {
    const exports = instance.exports;
    for (const key of primordials.ObjectKeys(exports)) {
      const value = exports[key];
      if (
        ObjectPrototypeIsPrototypeOf(wasm.Memory.prototype, value) &&
        !primordials.WeakSetPrototypeHas(chargedMemories, value)
      ) {
        const bytes = primordials.ArrayBufferPrototypeGetByteLength(value.buffer);
        chargeOffheap(bytes, "WebAssembly.Instance");
        primordials.WeakSetPrototypeAdd(chargedMemories, value);
        refundLater(value, bytes);
      }
    }
    return instance;
  };
  const Instance = wasm.Instance;
  const Module = wasm.Module;
  ObjectDefineProperty(wasm, "Instance", writable(new HostProxy(Instance, {
    __proto__: null,
    construct(target, args, newTarget) {
      return chargeExports(reflectConstruct(target, args, newTarget));
    },
  })));
  ObjectDefineProperty(Instance.prototype, "constructor", writable(wasm.Instance));
  // Compiling and instantiating happen now, within the job that asked
  // (V8's asynchronous versions finish on a background thread and resume
  // the caller in whichever job runs then); the answer is still a promise.
  const compileNow = (bytes) => new wasm.Module(bytes);
  ObjectDefineProperty(wasm, "compile", writable(function compile(bytes) {
    return new HostPromise((resolve) => resolve(compileNow(bytes)));
  }));
  ObjectDefineProperty(wasm, "instantiate", writable(function instantiate(source, imports) {
    return new HostPromise((resolve) => {
      if (ObjectPrototypeIsPrototypeOf(Module.prototype, source)) {
        resolve(new wasm.Instance(source, imports));
      } else {
        const module = compileNow(source);
        resolve({ module, instance: new wasm.Instance(module, imports) });
      }
    });
  }));
  for (const name of ["compileStreaming", "instantiateStreaming"]) {
    if (name in wasm) {
      ObjectDefineProperty(wasm, name, writable(function () {
        return primordials.PromiseReject(new TypeError(`WebAssembly.${name} needs fetch, which ssrd does not have: compile the bytes from props instead`));
      }));
    }
  }
}

// --- work that would outlive its job -------------------------------------

// FinalizationRegistry callbacks run whenever V8 collects garbage, which is
// during some later job: in ssrd they never run at all (the language allows
// it: a callback is never guaranteed). register() still checks its
// arguments as the standard does.
ObjectDefineProperty(FinalizationRegistry.prototype, "register", writable(function register(target, _held, _token) {
  if ((target === null || typeof target !== "object") && typeof target !== "function" && typeof target !== "symbol") {
    throw new TypeError("FinalizationRegistry.prototype.register: invalid target");
  }
  return undefined;
}));
ObjectDefineProperty(FinalizationRegistry.prototype, "unregister", writable(function unregister(token) {
  if ((token === null || typeof token !== "object") && typeof token !== "function" && typeof token !== "symbol") {
    throw new TypeError("FinalizationRegistry.prototype.unregister: invalid unregister token");
  }
  return false;
}));
// Atomics.waitAsync resumes its caller from a timer V8 keeps, in whichever
// job runs when it fires: not available (Atomics.wait still is).
delete Atomics.waitAsync;

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
let streamsModule = null;
function installStreams() {
  if (streamsModule !== null) return streamsModule;
  const streams = load("ext:deno_web/06_streams.js");
  streamsModule = streams;
  if (locked) {
    // Loaded after lockdown: the names stay frozen accessors (which now
    // answer from here), and the classes are frozen like every built-in.
    const roots = [];
    for (const name of STREAM_GLOBALS) ArrayPrototypePush(roots, streams[name]);
    for (const obj of new SafeSetIterator(freezeReachable(roots))) primordials.ObjectFreeze(obj);
    return streams;
  }
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

// How much of a failed job's error is kept: every field of an answer counts
// against the job's size limit (--max-html-mb), and a message or stack of
// many megabytes helps nobody. The Rust side caps again (job.rs).
const MAX_ERROR_TEXT = 16 * 1024;
const MAX_ERROR_NAME = 256;

function clip(text, max) {
  return text.length > max ? StringPrototypeSlice(text, 0, max) + "...(truncated)" : text;
}

// Hypernova's error shape: `stack` is the JS stack split at each "\n    ",
// so frames read "at ...". A thrown non-Error keeps the value as `message`.
// Each property of the bundle's error is read once (a getter that answers
// differently the second time gets no second chance). Runs under the job's
// deadline; a proxy is never asked anything.
function describe(err) {
  if (err !== null && typeof err === "object" && !core.isProxy(err) && ObjectPrototypeIsPrototypeOf(ErrorPrototype, err)) {
    const name = clip(String(err.name), MAX_ERROR_NAME);
    const message = clip(String(err.message), MAX_ERROR_TEXT);
    const rawStack = err.stack;
    const stack = typeof rawStack === "string" ? clip(rawStack, MAX_ERROR_TEXT) : `${name}: ${message}`;
    return { name, message, stack: StringPrototypeSplit(stack, "\n    ") };
  }
  if (typeof err === "string") {
    return { name: "Error", type: "Error", message: clip(err, MAX_ERROR_TEXT), stack: [""] };
  }
  if (err !== null && typeof err === "object" && core.isProxy(err)) {
    return { name: "Error", type: "Error", message: "the render threw a Proxy", stack: [""] };
  }
  return { name: "Error", type: "Error", message: err, stack: [""] };
}

const UNDESCRIBABLE = JSONStringify({ name: "Error", type: "Error", message: "the render threw a value that cannot be described", stack: [""] });

// A failed job's record (null prototype, plain data: the Rust side reads
// it without running any JS). Never throws.
function failure(err) {
  let statusCode = 500;
  let error;
  try {
    if (err !== null && typeof err === "object" && !core.isProxy(err)) {
      const status = err.statusCode;
      if (NumberIsInteger(status) && status >= 400 && status <= 599) statusCode = status;
    }
    error = JSONStringify(describe(err));
  } catch {
    // e.g. a thrown BigInt, a cyclic object, a getter that throws.
    try {
      error = JSONStringify({ name: "Error", type: "Error", message: clip(String(err), MAX_ERROR_TEXT), stack: [""] });
    } catch {
      error = UNDESCRIBABLE;
    }
  }
  if (typeof error !== "string" || error.length > 4 * MAX_ERROR_TEXT) error = UNDESCRIBABLE;
  return { __proto__: null, statusCode, error };
}

// A render's result as the host's own record: the HTML string, or a
// null-prototype `{html, meta}` whose meta is JSON text of an object, or a
// failure. Reads each property of the bundle's object once; never throws.
function settle(out) {
  try {
    if (typeof out === "string") return out;
    if (out !== null && typeof out === "object" && !core.isProxy(out)) {
      const html = out.html;
      if (typeof html === "string") {
        const raw = out.meta;
        let meta = "{}";
        if (raw !== undefined && raw !== null) {
          meta = JSONStringify(raw);
          if (typeof meta !== "string" || meta[0] !== "{") {
            return failure(new TypeError("ssrd.render(): meta must be an object"));
          }
        }
        return { __proto__: null, html, meta };
      }
    }
    const kind = out === null ? "null" : core.isProxy(out) ? "a Proxy" : typeof out;
    return failure(new TypeError(`ssrd.render() must return a string or {html, meta}; got ${kind}`));
  } catch (err) {
    return failure(err);
  }
}

// --- render glue ----------------------------------------------------------

// Called by the worker for every job. `propsJson` is the job's `data`, raw
// JSON text (parsing it here is faster than converting through Rust);
// `metadataJson` is the job's `metadata` or undefined.
//
// What it returns is always the host's own: a string, a record from
// settle/failure, or a promise the host made that resolves to one. A
// thenable from the bundle is adopted by a host promise (its `then` read
// once and called under the job's deadline); whatever it resolves with goes
// through settle. So the worker never reads a bundle object, and the bundle
// can neither skip settle nor hand the worker something that runs code
// when read (docs/worker.md, "What a render can return").
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
  if (typeof out === "string") return out;
  if (out !== null && (typeof out === "object" || typeof out === "function") && !core.isProxy(out)) {
    let then;
    try {
      then = out.then;
    } catch (err) {
      return failure(err);
    }
    if (typeof then === "function") {
      const adopted = new HostPromise((resolve, reject) => {
        ReflectApply(then, out, [resolve, reject]);
      });
      return PromisePrototypeThen(adopted, settle, failure);
    }
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
  if (api.markup !== undefined && api.markup !== "placement") {
    return 'globalThis.ssrd.markup must be "placement" or absent (see README: Bundle contract)';
  }
  return "";
}

// "placement" when the bundle's client finds components by Hypernova's
// placement markup and wants /batch answers to carry it in `html` (the
// unchanged Hypernova clients paste `html` as it is); "" otherwise.
function markupMode() {
  return globalThis.ssrd.markup === "placement" ? "placement" : "";
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
  const tamed = primordials.ObjectGetOwnPropertyDescriptor(obj, key);
  primordials.ObjectFreeze(tamed.get);
  primordials.ObjectFreeze(tamed.set);
}

// Freezes everything reachable from `roots` through properties (values,
// getters, setters) and prototypes, except the global object itself.
function freezeReachable(roots) {
  const seen = new SafeSet();
  const pending = [];
  const add = (v) => {
    if (((typeof v === "object" && v !== null) || typeof v === "function") && v !== globalThis) {
      if (!SetPrototypeHas(seen, v)) {
        SetPrototypeAdd(seen, v);
        ArrayPrototypePush(pending, v);
      }
    }
  };
  for (const root of roots) add(root);
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
  return seen;
}

// Set once lockdown ran: what loads later (the web streams) is frozen as
// it loads.
let locked = false;

function lockdown() {
  // deno_core's queueMicrotask, in an isolate started from a snapshot,
  // finds V8's native one on first use by deleting and restoring the global
  // for a moment: let it do that now, while the name is still configurable.
  const queue = primordials.ObjectGetOwnPropertyDescriptor(globalThis, "queueMicrotask")?.value;
  if (typeof queue === "function") ReflectApply(queue, globalThis, [() => {}]);
  const roots = [];
  // The language's globals, and every global the host installed (the web
  // APIs, WebAssembly, process, self...): their names can no longer be
  // rebound or deleted, and what they hold is frozen below.
  const names = primordials.ArrayPrototypeConcat(INTRINSIC_NAMES, HOST_GLOBALS);
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const desc = primordials.ObjectGetOwnPropertyDescriptor(globalThis, name);
    if (desc === undefined || !desc.configurable && !desc.writable && !("get" in desc)) continue;
    if ("value" in desc) {
      ArrayPrototypePush(roots, desc.value);
      ObjectDefineProperty(globalThis, name, { __proto__: null, writable: false, configurable: false });
    } else if (SetPrototypeHas(lazyStreamGetters, desc.get)) {
      // A web stream not loaded yet: an accessor for good, loading (and
      // freezing) the streams on first use.
      const set = function () {
        throw new TypeError(`ssrd froze ${String(name)} here: renders may not change built-in objects`);
      };
      ObjectDefineProperty(globalThis, name, { __proto__: null, get: desc.get, set, configurable: false });
      ArrayPrototypePush(roots, desc.get, set);
    } else {
      ArrayPrototypePush(roots, desc.get, desc.set);
      ObjectDefineProperty(globalThis, name, { __proto__: null, configurable: false });
    }
  }
  // Intrinsics no global names: iterator and generator prototypes, the
  // typed-array base, async functions.
  ArrayPrototypePush(
    roots,
    ObjectGetPrototypeOf([][primordials.SymbolIterator]()),
    ObjectGetPrototypeOf(new Map()[primordials.SymbolIterator]()),
    ObjectGetPrototypeOf(new Set()[primordials.SymbolIterator]()),
    ObjectGetPrototypeOf(""[primordials.SymbolIterator]()),
    ObjectGetPrototypeOf(/x/[primordials.SymbolMatchAll]("")),
    ObjectGetPrototypeOf(function* () {}),
    ObjectGetPrototypeOf(async function () {}),
    ObjectGetPrototypeOf(async function* () {}),
    ObjectGetPrototypeOf(Int8Array),
  );
  const seen = freezeReachable(roots);
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
  locked = true;
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

// Every global the host installed (and the language's own), recorded before
// any bundle code runs: lockdown() locks them.
const HOST_GLOBALS = primordials.ReflectOwnKeys(globalThis);

// Handed to the worker, then moved out of the bundle's reach (sandbox.rs)
// before any bundle code runs: everything above is captured in closures.
ObjectDefineProperty(
  globalThis,
  "__ssrdHost",
  {
    __proto__: null,
    value: { renderJob, checkContract, markupMode, warmupJobs, onStart, afterJob, lockdown, beforeSnapshot },
    enumerable: false,
    configurable: true,
  },
);
