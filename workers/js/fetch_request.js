// ssrd's Request: url, method, headers, signal, the read-only mode fields,
// a body (fetch_body.js) and clone(), as the fetch standard has them.
//
// Its own file, one class as the standard describes it; it also holds the
// URL parsing Response.redirect() shares (there is no base URL to resolve
// against, so a URL must be absolute).
import { core, primordials } from "ext:core/mod.js";
import { Headers, headersFrom, TOKEN } from "ext:ssrd_host/fetch_headers.js";
import { Body, defineBodyReaders, extractBody } from "ext:ssrd_host/fetch_body.js";

const {
  JSONStringify,
  ObjectPrototypeIsPrototypeOf,
  RegExpPrototypeTest,
  SafeArrayIterator,
  String,
  StringPrototypeToUpperCase,
  SymbolFor,
  SymbolToStringTag,
  TypeError,
} = primordials;

const url = core.loadExtScript("ext:deno_web/00_url.js");
const abort = core.loadExtScript("ext:deno_web/03_abort_signal.js");

const METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"];
const FORBIDDEN_METHODS = ["CONNECT", "TRACE", "TRACK"];

function normalizeMethod(method) {
  method = String(method);
  if (!RegExpPrototypeTest(TOKEN, method)) throw new TypeError(`Invalid method: ${JSONStringify(method)}`);
  const upper = StringPrototypeToUpperCase(method);
  for (const m of new SafeArrayIterator(FORBIDDEN_METHODS)) {
    if (m === upper) throw new TypeError(`Method ${method} is forbidden`);
  }
  for (const m of new SafeArrayIterator(METHODS)) {
    if (m === upper) return upper;
  }
  return method;
}

function parseUrl(input, what) {
  try {
    return new url.URL(String(input)).href;
  } catch {
    // No document and no location here, so nothing to resolve against.
    throw new TypeError(`${what}: ${JSONStringify(String(input))} is not an absolute URL (ssrd has no base URL to resolve it against)`);
  }
}

// Request options that SSR code reads but ssrd never acts on: kept as the
// standard's values so the getters answer sensibly.
const REQUEST_FIELDS = {
  cache: "default",
  credentials: "same-origin",
  destination: "",
  integrity: "",
  keepalive: false,
  mode: "cors",
  redirect: "follow",
  referrer: "about:client",
  referrerPolicy: "",
};

let requestBody;

class Request {
  #url;
  #method;
  #headers;
  #signal;
  #body;
  #fields;

  constructor(input, init = undefined) {
    if (init !== undefined && init !== null && typeof init !== "object") {
      throw new TypeError("Request: init must be an object");
    }
    init ??= {};
    const from = ObjectPrototypeIsPrototypeOf(Request.prototype, input) ? input : null;
    this.#url = from !== null ? from.#url : parseUrl(input, "Request");
    this.#method = init.method !== undefined ? normalizeMethod(init.method) : from !== null ? from.#method : "GET";
    this.#fields = { __proto__: null };
    for (const key in REQUEST_FIELDS) {
      const given = init[key];
      this.#fields[key] = given !== undefined
        ? (typeof REQUEST_FIELDS[key] === "boolean" ? !!given : String(given))
        : from !== null ? from.#fields[key] : REQUEST_FIELDS[key];
    }
    if (this.#fields.mode === "navigate") throw new TypeError("Request: mode may not be \"navigate\"");
    let signal = init.signal !== undefined ? init.signal : from !== null ? from.#signal : null;
    if (signal !== null && !ObjectPrototypeIsPrototypeOf(abort.AbortSignal.prototype, signal)) {
      throw new TypeError("Request: signal must be an AbortSignal");
    }
    // The standard gives every request a signal of its own that follows
    // the one it was given.
    this.#signal = signal === null ? new abort.AbortController().signal : abort.AbortSignal.any([signal]);
    this.#headers = init.headers !== undefined ? headersFrom(init.headers) : from !== null ? new Headers(from.#headers) : new Headers();
    let body = null;
    if (init.body !== undefined && init.body !== null) {
      if (this.#method === "GET" || this.#method === "HEAD") {
        throw new TypeError("Request: a GET or HEAD request cannot have a body");
      }
      const extracted = extractBody(init.body);
      if (extracted.type !== null && !this.#headers.has("content-type")) {
        this.#headers.append("content-type", extracted.type);
      }
      body = new Body(extracted);
    } else if (from !== null && !from.#body.isNull()) {
      if (from.#body.disturbed()) throw new TypeError("Request: the input request's body has already been read");
      // Taking over the input's body, as the standard does: the input is
      // then used.
      body = from.#body;
      from.#body = new Body(null);
      from.#body.used = true;
    }
    this.#body = body ?? new Body(null);
  }

  static {
    requestBody = (request) => {
      if (!ObjectPrototypeIsPrototypeOf(Request.prototype, request)) throw new TypeError("Illegal invocation: not a Request");
      return request.#body;
    };
  }

  get url() {
    return this.#url;
  }

  get method() {
    return this.#method;
  }

  get headers() {
    return this.#headers;
  }

  get signal() {
    return this.#signal;
  }

  get cache() {
    return this.#fields.cache;
  }

  get credentials() {
    return this.#fields.credentials;
  }

  get destination() {
    return this.#fields.destination;
  }

  get integrity() {
    return this.#fields.integrity;
  }

  get keepalive() {
    return this.#fields.keepalive;
  }

  get mode() {
    return this.#fields.mode;
  }

  get redirect() {
    return this.#fields.redirect;
  }

  get referrer() {
    return this.#fields.referrer;
  }

  get referrerPolicy() {
    return this.#fields.referrerPolicy;
  }

  clone() {
    const copy = new Request(this.#url, {
      method: this.#method,
      headers: this.#headers,
      signal: this.#signal,
      ...this.#fields,
    });
    copy.#body = this.#body.clone("Request.clone");
    return copy;
  }

  get [SymbolToStringTag]() {
    return "Request";
  }

  [SymbolFor("Deno.customInspect")]() {
    return `Request { method: ${JSONStringify(this.#method)}, url: ${JSONStringify(this.#url)} }`;
  }
}
defineBodyReaders(Request.prototype, requestBody, "Request");

export { parseUrl, Request };
