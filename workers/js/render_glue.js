// The render glue: the worker's calls into the bundle's `globalThis.ssrd`.
//
// The glue is the whole bundle contract seen from the host (README, "The
// bundle contract"): checkContract() checks what the bundle set, markupMode()
// and warmupJobs() read its two options, and renderJob() calls
// `globalThis.ssrd.render(name, props, context)` for every job and turns
// whatever comes back (a string, `{html, meta}`, a promise or thenable of
// either, or a throw) into one of the host's own records (answers.js). A
// promise resolves to one of the same records.
//
// Its own file because this is the one place the worker's requests meet
// the bundle's code; what is made of the bundle's answer is answers.js's
// job, and what a job leaves behind is job_scope.js's.
import { core, primordials } from "ext:core/mod.js";
import { failure, settle } from "ext:ssrd_host/answers.js";
import { startJob } from "ext:ssrd_host/job_scope.js";

const {
  ArrayIsArray,
  Error,
  JSONParse,
  JSONStringify,
  NumberIsSafeInteger,
  ObjectKeys,
  PromisePrototypeThen,
  ReflectApply,
  String,
} = primordials;

// Captured before any bundle code runs (which may replace the global).
const HostPromise = globalThis.Promise;

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
export function renderJob(name, propsJson, metadataJson) {
  startJob();
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
export function checkContract() {
  const api = globalThis.ssrd;
  if (api === null || typeof api !== "object") {
    return 'the bundle did not set globalThis.ssrd (see README, "The bundle contract")';
  }
  if (typeof api.render !== "function") {
    return 'globalThis.ssrd.render is not a function (see README, "The bundle contract")';
  }
  if (api.warmup !== undefined && !ArrayIsArray(api.warmup)) {
    return "globalThis.ssrd.warmup must be an array of {name, props}";
  }
  if (api.markup !== undefined && api.markup !== "placement") {
    return 'globalThis.ssrd.markup must be "placement" or absent (see README, "The bundle contract")';
  }
  const cache = readCache(api.cache);
  return typeof cache === "string" ? cache : "";
}

// The most entries one component may declare, and the longest ttl (30 days).
const CACHE_MAX_ENTRIES = 1000000;
const CACHE_MAX_TTL_MS = 2592000000;

// `globalThis.ssrd.cache` ({Name: {maxEntries, ttlMs}}, the components
// whose HTML depends on their props alone) as [name, maxEntries, ttlMs]
// triples, or a message saying what is wrong with it.
function readCache(cache) {
  const where = "globalThis.ssrd.cache";
  const contract = '(see README, "The bundle contract")';
  if (cache === undefined) return [];
  if (cache === null || typeof cache !== "object" || ArrayIsArray(cache)) {
    return `${where} must be an object of {Component: {maxEntries, ttlMs}} ${contract}`;
  }
  const out = [];
  const names = ObjectKeys(cache);
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const entry = cache[name];
    if (entry === null || typeof entry !== "object" || ArrayIsArray(entry)) {
      return `${where}.${name} must be {maxEntries, ttlMs} ${contract}`;
    }
    const keys = ObjectKeys(entry);
    for (let k = 0; k < keys.length; k++) {
      if (keys[k] !== "maxEntries" && keys[k] !== "ttlMs") {
        return `${where}.${name} has an unknown field ${JSONStringify(keys[k])}: only maxEntries and ttlMs ${contract}`;
      }
    }
    const { maxEntries, ttlMs } = entry;
    if (!NumberIsSafeInteger(maxEntries) || maxEntries < 1 || maxEntries > CACHE_MAX_ENTRIES) {
      return `${where}.${name}.maxEntries must be an integer from 1 to ${CACHE_MAX_ENTRIES}, not ${JSONStringify(maxEntries) ?? String(maxEntries)}`;
    }
    if (!NumberIsSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > CACHE_MAX_TTL_MS) {
      return `${where}.${name}.ttlMs must be an integer number of milliseconds from 1 to ${CACHE_MAX_TTL_MS}, not ${JSONStringify(ttlMs) ?? String(ttlMs)}`;
    }
    out.push([name, maxEntries, ttlMs]);
  }
  return out;
}

// The components the bundle declared pure, as [name, maxEntries, ttlMs]
// triples (checkContract has refused a bundle whose declaration is wrong).
export function cachePolicies() {
  const cache = readCache(globalThis.ssrd.cache);
  if (typeof cache === "string") throw new Error(cache);
  return cache;
}

// "placement" when the bundle's client finds components by Hypernova's
// placement markup and wants /batch answers to carry it in `html` (the
// unchanged Hypernova clients paste `html` as it is); "" otherwise.
export function markupMode() {
  return globalThis.ssrd.markup === "placement" ? "placement" : "";
}

// The warm-up jobs the bundle asked for, as [name, propsJson] pairs.
export function warmupJobs() {
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
