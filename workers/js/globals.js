// Puts the web APIs and the Node names on globalThis, in one table.
//
// Installs the web APIs that server-side rendering code commonly touches,
// taken from deno_web (console, timers, URL, TextEncoder/TextDecoder and
// their streams, atob/btoa, structuredClone, performance, MessageChannel,
// events, AbortController, web streams), plus ssrd's own Headers/Request/
// Response (fetch_classes.js) and the little of Node that bundles built
// for it touch (node_compat.js). docs/worker.md, "Web APIs and Node
// compatibility", says where each comes from. Nothing here reaches files,
// the network or processes.
//
// Its own file so that what a bundle finds on globalThis is read in one
// place: the other files make the pieces, this one names them. The order
// the names are defined in is the order lockdown.js later locks them in.
import { primordials } from "ext:core/mod.js";
import { fetch, Headers, Request, Response } from "ext:ssrd_host/fetch_classes.js";
import {
  abort,
  base64,
  clone,
  consoleMod,
  domException,
  encoding,
  event,
  messagePort,
  performanceMod,
  timers,
  url,
} from "ext:ssrd_host/deno_web.js";
import { MessageChannel, setImmediate, setInterval, setTimeout } from "ext:ssrd_host/job_scope.js";
import { printConsole } from "ext:ssrd_host/bundle_log.js";
import { nodeProcess, require } from "ext:ssrd_host/node_compat.js";
import { installLazyStreams } from "ext:ssrd_host/web_streams.js";
import { writable } from "ext:ssrd_host/util.js";

const { ObjectDefineProperty } = primordials;

export function installGlobals() {
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
    // (The web streams are installed below, on first use: web_streams.js.)
    TextEncoderStream: encoding.TextEncoderStream,
    TextDecoderStream: encoding.TextDecoderStream,
    // The fetch standard's classes, ssrd's own; fetch itself rejects.
    Headers,
    Request,
    Response,
    fetch,
    // Node, the little bundles built for it touch (node_compat.js).
    process: nodeProcess(),
    setImmediate,
    clearImmediate: timers.clearTimeout,
    require,
  };
  for (const name in globals) {
    ObjectDefineProperty(globalThis, name, writable(globals[name]));
  }
  installLazyStreams();

  // Some libraries feature-detect `self` or `window` to pick a web build.
  ObjectDefineProperty(globalThis, "self", writable(globalThis));
}
