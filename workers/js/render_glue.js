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
  PromisePrototypeThen,
  ReflectApply,
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
  return "";
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
