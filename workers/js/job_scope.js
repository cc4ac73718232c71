// Timers and message channels, each tied to the job that made it.
//
// A timer or a message a job queued must never run during another
// caller's job. So setTimeout, setInterval, setImmediate, AbortSignal.timeout
// and the MessageChannels made while a job runs are tracked here, and
// endJob() cancels and closes them all once the job's answer is in
// (between_jobs.js calls it). Its own file because this is the one place
// that knows which timers and ports belong to the current job: globals.js
// installs the wrappers, render_glue.js opens a job, between_jobs.js ends
// it. MessagePort's postMessage with transferred buffers is mended here
// too, on the same deno_web port class.
import { primordials } from "ext:core/mod.js";
import { abort, domException, messagePort, timers } from "ext:ssrd_host/deno_web.js";
import { writable } from "ext:ssrd_host/util.js";

const {
  ArrayIsArray,
  ArrayPrototypePush,
  ObjectDefineProperty,
  ReflectApply,
  SafeSet,
  SafeSetIterator,
  SetPrototypeAdd,
  SetPrototypeClear,
  SetPrototypeGetSize,
  TypeError,
} = primordials;

// Timers and message channels a job created. When the job's answer is in,
// `endJob` (from afterJob) cancels and closes them all: nothing a request
// queued ever runs during another request.
const jobTimers = new SafeSet();
const jobPorts = new SafeSet();

export function setTimeout(callback, delay = 0, ...args) {
  const id = ReflectApply(timers.setTimeout, undefined, [callback, delay, ...args]);
  SetPrototypeAdd(jobTimers, id);
  return id;
}

export function setInterval(callback, delay = 0, ...args) {
  const id = ReflectApply(timers.setInterval, undefined, [callback, delay, ...args]);
  SetPrototypeAdd(jobTimers, id);
  return id;
}

// Node's setImmediate: "soon, after what is already queued", which a
// zero-delay timer is here (there is no I/O phase to run before). On the
// same tracked timers, so it never outlives its job either.
export function setImmediate(callback, ...args) {
  if (typeof callback !== "function") throw new TypeError("setImmediate: callback is not a function");
  return setTimeout(callback, 0, ...args);
}

// Only a job's own channels are closed after it: one made while the bundle
// loads is the bundle's lasting state (react-dom's server.browser build
// keeps its scheduler on one), and closing it after the first job would
// silently stop every later job's scheduled work.
let inJob = false;

export class MessageChannel extends messagePort.MessageChannel {
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

function postMessage(message, transferOrOptions) {
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

// Puts the two replacements above on deno_web's classes (host.js calls this
// first, before anything else changes a built-in).
export function installJobScope() {
  ObjectDefineProperty(messagePort.MessagePort.prototype, "postMessage", writable(postMessage));
  ObjectDefineProperty(abort.AbortSignal, "timeout", writable(abortSignalTimeout));
}

// A job starts: channels made from now on are the job's.
export function startJob() {
  inJob = true;
}

// A job's answer is in: its timers are cancelled and its channels closed.
// Most jobs leave neither: an empty set is left alone (clearing one still
// allocates it a new table, on every job).
export function endJob() {
  inJob = false;
  if (SetPrototypeGetSize(jobTimers) !== 0) {
    for (const id of new SafeSetIterator(jobTimers)) {
      ReflectApply(timers.clearTimeout, undefined, [id]);
    }
    SetPrototypeClear(jobTimers);
  }
  if (SetPrototypeGetSize(jobPorts) !== 0) {
    for (const port of new SafeSetIterator(jobPorts)) {
      port.close();
    }
    SetPrototypeClear(jobPorts);
  }
}
