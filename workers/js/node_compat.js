// The little of Node that bundles built for it touch: a frozen `process`
// and a `require` that explains itself. (`setImmediate` is a tracked timer:
// job_scope.js.)
//
// Its own file because what is offered to Node code is a decision of its
// own, measured on real libraries (docs/worker.md, "Web APIs and Node
// compatibility"), and deliberately small: globals.js only installs it.
import { primordials } from "ext:core/mod.js";

const {
  JSONStringify,
  ObjectFreeze,
  queueMicrotask,
  ReflectApply,
  String,
  TypeError,
} = primordials;

// What bundles built for Node, or libraries written for it, reach for at
// load and render time (measured on react-dom, react-router,
// styled-components, Emotion, react-query, react-intl, react-helmet-async;
// docs/worker.md, "Web APIs and Node compatibility"): `process.env.X`
// reads guarded by `typeof process`, and `process.nextTick`. So `process`
// is a frozen object with exactly that. No `version`, `versions` or
// `platform`: code that finds `process.versions.node` decides it runs in
// Node and requires Node's built-ins, which is the one thing a render
// worker cannot give.
export function nodeProcess() {
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
export function require(specifier) {
  throw new TypeError(
    `require(${JSONStringify(String(specifier))}): the ssrd render worker is not Node and has no modules to load. ` +
      "Bundle everything into the one script, built for the web rather than Node " +
      '(esbuild: platform "neutral" with conditions ["edge-light", "workerd", "worker", "module"] and mainFields ["module", "main"]; ' +
      'README, "The bundle contract"), and pass data in props.',
  );
}
