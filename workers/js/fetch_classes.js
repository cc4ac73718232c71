// ssrd's Headers, Request and Response: the fetch standard's data classes
// without fetch itself.
//
// Server-rendering libraries build and read these objects even when nothing
// goes over the network: react-router's data router takes a `Request` and
// hands loaders `Response`s, React's streaming renderers are read through
// `Response`-like bodies. deno_fetch has them, but it brings a network
// stack, TLS, a DNS resolver, file access and permissions into a sandbox
// that must have none, so these are ssrd's own, written from the WHATWG
// Fetch standard (https://fetch.spec.whatwg.org/) and kept to what SSR code
// uses:
//   - Headers: case-insensitive, ordered, iterable (sorted and combined as
//     the standard says, `set-cookie` kept apart), with guards so the
//     headers of `Response.error()`/`Response.redirect()` cannot change;
//   - Request: url, method, headers, signal, the read-only mode fields,
//     a body read through text()/json()/arrayBuffer()/bytes(), clone();
//   - Response: status, statusText, ok, headers, type, url, redirected,
//     a body as a ReadableStream, the same readers, clone(), and the
//     static error()/redirect()/json().
// Bodies are strings, buffers, URLSearchParams or ReadableStreams (Blob and
// FormData are not offered: no SSR library we tried needed them on the
// server; formData() rejects saying so). `fetch` itself rejects with a
// TypeError that says why: the render sandbox has no network, data comes
// in props.
//
// Nothing here holds an op or a host object: the streams come from
// deno_web's pure-JS implementation, and every internal slot is a private
// field, out of reach of property walks.
//
// Split by class: fetch_headers.js, fetch_request.js and fetch_response.js
// hold one class each, fetch_body.js what Request and Response share. This
// file gathers them for globals.js and adds `fetch`, which only rejects.
// Evaluating it loads deno_web's encoding, URL and abort scripts, in that
// order (host.js imports it first).
import { primordials } from "ext:core/mod.js";
import { Headers } from "ext:ssrd_host/fetch_headers.js";
import { Request } from "ext:ssrd_host/fetch_request.js";
import { Response } from "ext:ssrd_host/fetch_response.js";

const {
  JSONStringify,
  ObjectPrototypeIsPrototypeOf,
  PromiseReject,
  String,
  TypeError,
} = primordials;

// Present so that code calling it learns why it cannot, at the call site,
// instead of a bare "fetch is not defined".
function fetch(input, _init = undefined) {
  let what = "";
  try {
    what = ObjectPrototypeIsPrototypeOf(Request.prototype, input) ? input.url : String(input);
  } catch {
    // An input that cannot even be turned into text: say nothing of it.
  }
  return PromiseReject(
    new TypeError(
      `fetch(${JSONStringify(what)}) is not available: ssrd's render sandbox has no network. ` +
        "Load the data before rendering and pass it to the component in the job's props.",
    ),
  );
}

export { fetch, Headers, Request, Response };
