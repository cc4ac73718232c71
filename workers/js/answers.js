// A render's outcome as the host's own plain record, the only thing the
// Rust side (answer.rs) ever reads:
//   - a string: the HTML, with empty meta (the fast, common case);
//   - `{html, meta}`: HTML plus meta serialised to a JSON string;
//   - `{statusCode, error}`: a failed job, error serialised to JSON.
// Records have a null prototype and hold only data, so reading one runs no
// JS.
//
// Its own file because turning whatever the bundle returned or threw into
// one of these three shapes is where every bundle value is read (each
// property once, a proxy never), and where an error's size is capped:
// render_glue.js only decides when to call settle() or failure().
import { core, primordials } from "ext:core/mod.js";
import { clip } from "ext:ssrd_host/util.js";

const {
  ErrorPrototype,
  JSONStringify,
  NumberIsInteger,
  ObjectPrototypeIsPrototypeOf,
  String,
  StringPrototypeSplit,
  TypeError,
} = primordials;

// How much of a failed job's error is kept: every field of an answer counts
// against the job's size limit (--max-html-mb), and a message or stack of
// many megabytes helps nobody. The Rust side caps again (job.rs).
const MAX_ERROR_TEXT = 16 * 1024;
const MAX_ERROR_NAME = 256;

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
export function failure(err) {
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
export function settle(out) {
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
