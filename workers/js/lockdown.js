// Freezes the language's built-ins and the host's globals once the bundle
// is loaded, so no render can change them for the renders after it.
//
// After the bundle is evaluated (its polyfills are in by then), the
// language's own objects are frozen, so no render can change them for the
// renders after it: `Object.prototype.x = 1` or `Array.prototype.join = f`
// fails (a TypeError in strict code), and the global names of the
// constructors cannot be rebound. What still persists between renders is
// the bundle's own state: its module variables and whatever it puts on
// globalThis (docs/worker.md, Isolation). State that no freezing reaches is
// reset after every job instead (between_jobs.js).
//
// Its own file because it runs at a different moment from everything else
// here: the other host files run before the bundle and capture the
// built-ins they need as they were; the worker calls lockdown() only after
// the bundle is evaluated (js_runtime.rs), through host.js, which passes
// the names of the globals it installed.
import { primordials } from "ext:core/mod.js";
import { freezeStreamsOnLoad, isLazyStreamGetter } from "ext:ssrd_host/web_streams.js";

const {
  ArrayPrototypePush,
  ObjectDefineProperty,
  ObjectGetPrototypeOf,
  ReflectApply,
  SafeSet,
  SafeSetIterator,
  SetPrototypeAdd,
  SetPrototypeHas,
  String,
  TypeError,
} = primordials;

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

// `hostGlobals`: every global the host installed (and the language's own),
// recorded by host.js before any bundle code ran.
export function lockdown(hostGlobals) {
  // deno_core's queueMicrotask, in an isolate started from a snapshot,
  // finds V8's native one on first use by deleting and restoring the global
  // for a moment: let it do that now, while the name is still configurable.
  const queue = primordials.ObjectGetOwnPropertyDescriptor(globalThis, "queueMicrotask")?.value;
  if (typeof queue === "function") ReflectApply(queue, globalThis, [() => {}]);
  const roots = [];
  // The language's globals, and every global the host installed (the web
  // APIs, WebAssembly, process, self...): their names can no longer be
  // rebound or deleted, and what they hold is frozen below.
  const names = primordials.ArrayPrototypeConcat(INTRINSIC_NAMES, hostGlobals);
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const desc = primordials.ObjectGetOwnPropertyDescriptor(globalThis, name);
    if (desc === undefined || !desc.configurable && !desc.writable && !("get" in desc)) continue;
    if ("value" in desc) {
      ArrayPrototypePush(roots, desc.value);
      ObjectDefineProperty(globalThis, name, { __proto__: null, writable: false, configurable: false });
    } else if (isLazyStreamGetter(desc.get)) {
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
  freezeStreamsOnLoad(freezeReachable);
}
