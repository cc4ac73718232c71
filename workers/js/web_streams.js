// The web stream globals (ReadableStream and the rest), loaded on first use.
//
// Web streams (React's renderToReadableStream and prerender, Response
// bodies) come from deno_web's 06_streams.js, a 200 KB script: evaluated
// in every isolate it costs 1-2 MiB of heap and up to ~4 MiB of RSS per worker
// (docs/worker.md), which bundles that only call renderToString would pay
// for nothing. So each name starts as an accessor that evaluates the
// script on first use and then turns every stream name into a plain data
// property; assigning one first (a polyfill) simply replaces it. A
// snapshot gets them evaluated (host.js, beforeSnapshot).
//
// Its own file because these globals have a life of their own: installed
// lazily, kept as accessors by lockdown.js if still unloaded then, and
// frozen as they load if that happens after lockdown.
import { core, primordials } from "ext:core/mod.js";
import { writable } from "ext:ssrd_host/util.js";

const {
  ArrayPrototypePush,
  ObjectDefineProperty,
  SafeSet,
  SafeSetIterator,
  SetPrototypeAdd,
  SetPrototypeHas,
} = primordials;

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
// Set by lockdown (lockdown.js): what loads after it is frozen as it loads.
let freezeOnLoad = null;

// Loads the streams (once) and returns deno_web's module.
export function installStreams() {
  if (streamsModule !== null) return streamsModule;
  const streams = core.loadExtScript("ext:deno_web/06_streams.js");
  streamsModule = streams;
  if (freezeOnLoad !== null) {
    // Loaded after lockdown: the names stay frozen accessors (which now
    // answer from here), and the classes are frozen like every built-in.
    const roots = [];
    for (const name of STREAM_GLOBALS) ArrayPrototypePush(roots, streams[name]);
    for (const obj of new SafeSetIterator(freezeOnLoad(roots))) primordials.ObjectFreeze(obj);
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

// Puts each stream name on globalThis as a loading accessor.
export function installLazyStreams() {
  for (const name of STREAM_GLOBALS) installLazyStream(name);
}

function installLazyStream(name) {
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

// Whether `get` is the loading accessor of a stream name not loaded yet.
export function isLazyStreamGetter(get) {
  return SetPrototypeHas(lazyStreamGetters, get);
}

// Called once lockdown ran: streams that load later are frozen with
// `freezeReachable` (which returns the set of objects to freeze).
export function freezeStreamsOnLoad(freezeReachable) {
  freezeOnLoad = freezeReachable;
}
