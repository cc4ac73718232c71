// Memory outside the JS heap, charged to the worker's one off-heap budget.
//
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
//
// Its own file because it is the only JS that talks to memory.rs (the two
// offheap ops) and the only place that replaces the buffer and WebAssembly
// constructors. WebAssembly's compile and instantiate are made synchronous
// here as well, since they share the charged constructors.
import { core, primordials } from "ext:core/mod.js";
import { writable } from "ext:ssrd_host/util.js";

const {
  ObjectDefineProperty,
  ObjectPrototypeIsPrototypeOf,
  RangeError,
  ReflectApply,
  TypeError,
} = primordials;

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

const WASM_PAGE = 65536;

// Replaces the constructors and WebAssembly's entry points (host.js calls
// this after the rejection log is in and before the globals are installed).
export function installOffheapBudget() {
  chargedConstructor("ArrayBuffer", globalThis, maxBytes);
  chargedConstructor("SharedArrayBuffer", globalThis, maxBytes);
  const wasm = globalThis.WebAssembly;
  if (wasm !== undefined) chargeWasm(wasm);
}

// WebAssembly: memories charged as they are made and grown, exported
// memories as their instance is made, compile and instantiate done at once.
function chargeWasm(wasm) {
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
