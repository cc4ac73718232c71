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
import { core, primordials } from "ext:core/mod.js";

const {
  ArrayBufferIsView,
  ArrayBufferPrototypeGetByteLength,
  ArrayBufferPrototypeSlice,
  ArrayPrototypePush,
  ArrayPrototypeSort,
  ArrayPrototypeSplice,
  JSONParse,
  JSONStringify,
  ObjectDefineProperty,
  ObjectPrototypeIsPrototypeOf,
  PromisePrototypeThen,
  PromiseReject,
  PromiseResolve,
  RangeError,
  RegExpPrototypeTest,
  SafeArrayIterator,
  String,
  StringPrototypeCharCodeAt,
  StringPrototypeToLowerCase,
  StringPrototypeToUpperCase,
  SymbolFor,
  SymbolIterator,
  SymbolToStringTag,
  TypeError,
  TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeSlice,
  Uint8Array,
} = primordials;

const encoding = core.loadExtScript("ext:deno_web/08_text_encoding.js");
const url = core.loadExtScript("ext:deno_web/00_url.js");
const abort = core.loadExtScript("ext:deno_web/03_abort_signal.js");

// deno_web's streams, evaluated only once a body is used as a stream (the
// script is large; host.js installs the stream globals lazily too, and
// loadExtScript evaluates a script once per isolate).
const streams = () => core.loadExtScript("ext:deno_web/06_streams.js");

// Whether `value` is one of our ReadableStreams, without evaluating the
// streams script for values that do not even claim to be one.
function isReadableStream(value) {
  return value !== null && typeof value === "object" && value[SymbolToStringTag] === "ReadableStream" &&
    ObjectPrototypeIsPrototypeOf(streams().ReadableStreamPrototype, value);
}

const encoder = new encoding.TextEncoder();
const utf8 = (bytes) => encoding.decode(bytes, "utf-8");

// --- headers ----------------------------------------------------------------

// RFC 9110 token characters: what a header name or a method may contain.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// A header value may not hold NUL, CR or LF (after trimming).
const BAD_VALUE = /[\0\r\n]/;

function isHttpWhitespace(code) {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

// Leading and trailing HTTP whitespace go (the standard's "normalize").
function normalizeValue(value) {
  let start = 0;
  let end = value.length;
  while (start < end && isHttpWhitespace(StringPrototypeCharCodeAt(value, start))) start++;
  while (end > start && isHttpWhitespace(StringPrototypeCharCodeAt(value, end - 1))) end--;
  return start === 0 && end === value.length ? value : primordials.StringPrototypeSlice(value, start, end);
}

function checkName(name) {
  if (!RegExpPrototypeTest(TOKEN, name)) {
    throw new TypeError(`Invalid header name: ${JSONStringify(name)}`);
  }
}

function checkValue(name, value) {
  if (RegExpPrototypeTest(BAD_VALUE, value)) {
    throw new TypeError(`Invalid value for header ${JSONStringify(name)}`);
  }
}

// Who may change a Headers object: anyone, or nobody (a response that
// must stay as built).
const MUTABLE = "none";
const IMMUTABLE = "immutable";

// Set by Request and Response on the Headers they own; undefined for any
// other caller, so a bundle cannot reach in.
let setGuard;

class Headers {
  // [lower-cased name, value] in insertion order: the standard's header
  // list. Small (SSR requests carry a handful), so a plain array.
  #list = [];
  #guard = MUTABLE;

  constructor(init = undefined) {
    if (init === undefined || init === null) return;
    if (typeof init !== "object" && typeof init !== "function") {
      throw new TypeError("Headers: init must be an object, an iterable of pairs, or Headers");
    }
    const iterator = init[SymbolIterator];
    if (iterator !== undefined) {
      if (typeof iterator !== "function") throw new TypeError("Headers: init[Symbol.iterator] is not a function");
      for (const pair of init) {
        if (pair === null || typeof pair !== "object" || typeof pair[SymbolIterator] !== "function") {
          throw new TypeError("Headers: each header must be a [name, value] pair");
        }
        const items = [...pair];
        if (items.length !== 2) throw new TypeError("Headers: each header must be a [name, value] pair");
        this.append(items[0], items[1]);
      }
    } else {
      for (const key of primordials.ReflectOwnKeys(init)) {
        if (typeof key !== "string") continue;
        const desc = primordials.ObjectGetOwnPropertyDescriptor(init, key);
        if (desc === undefined || !desc.enumerable) continue;
        this.append(key, init[key]);
      }
    }
  }

  static {
    setGuard = (headers, guard) => {
      headers.#guard = guard;
    };
  }

  #writable() {
    if (this.#guard === IMMUTABLE) throw new TypeError("Headers are immutable");
  }

  append(name, value) {
    name = String(name);
    value = normalizeValue(String(value));
    checkName(name);
    checkValue(name, value);
    this.#writable();
    ArrayPrototypePush(this.#list, [StringPrototypeToLowerCase(name), value]);
  }

  delete(name) {
    name = String(name);
    checkName(name);
    this.#writable();
    const lower = StringPrototypeToLowerCase(name);
    const list = this.#list;
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i][0] === lower) ArrayPrototypeSplice(list, i, 1);
    }
  }

  get(name) {
    name = String(name);
    checkName(name);
    const lower = StringPrototypeToLowerCase(name);
    let out = null;
    for (const entry of new SafeArrayIterator(this.#list)) {
      if (entry[0] === lower) out = out === null ? entry[1] : `${out}, ${entry[1]}`;
    }
    return out;
  }

  getSetCookie() {
    const out = [];
    for (const entry of new SafeArrayIterator(this.#list)) {
      if (entry[0] === "set-cookie") ArrayPrototypePush(out, entry[1]);
    }
    return out;
  }

  has(name) {
    name = String(name);
    checkName(name);
    const lower = StringPrototypeToLowerCase(name);
    for (const entry of new SafeArrayIterator(this.#list)) {
      if (entry[0] === lower) return true;
    }
    return false;
  }

  set(name, value) {
    name = String(name);
    value = normalizeValue(String(value));
    checkName(name);
    checkValue(name, value);
    this.#writable();
    const lower = StringPrototypeToLowerCase(name);
    const list = this.#list;
    let found = false;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] !== lower) continue;
      if (found) {
        ArrayPrototypeSplice(list, i, 1);
        i--;
      } else {
        list[i] = [lower, value];
        found = true;
      }
    }
    if (!found) ArrayPrototypePush(list, [lower, value]);
  }

  // The standard's "sort and combine": names in order, one entry per name
  // with its values joined by ", ", except set-cookie, one entry per value.
  #sorted() {
    const names = [];
    for (const entry of new SafeArrayIterator(this.#list)) {
      let seen = false;
      for (const n of new SafeArrayIterator(names)) {
        if (n === entry[0]) {
          seen = true;
          break;
        }
      }
      if (!seen) ArrayPrototypePush(names, entry[0]);
    }
    ArrayPrototypeSort(names, (a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const out = [];
    for (const name of new SafeArrayIterator(names)) {
      if (name === "set-cookie") {
        for (const value of new SafeArrayIterator(this.getSetCookie())) ArrayPrototypePush(out, [name, value]);
      } else {
        ArrayPrototypePush(out, [name, this.get(name)]);
      }
    }
    return out;
  }

  forEach(callback, thisArg = undefined) {
    if (typeof callback !== "function") throw new TypeError("Headers.forEach: callback is not a function");
    for (const [name, value] of new SafeArrayIterator(this.#sorted())) {
      primordials.ReflectApply(callback, thisArg, [value, name, this]);
    }
  }

  *entries() {
    for (const entry of new SafeArrayIterator(this.#sorted())) yield entry;
  }

  *keys() {
    for (const entry of new SafeArrayIterator(this.#sorted())) yield entry[0];
  }

  *values() {
    for (const entry of new SafeArrayIterator(this.#sorted())) yield entry[1];
  }

  [SymbolIterator]() {
    return this.entries();
  }

  get [SymbolToStringTag]() {
    return "Headers";
  }

  [SymbolFor("Deno.customInspect")]() {
    return `Headers ${JSONStringify(this.#sorted())}`;
  }
}

function headersFrom(init) {
  return ObjectPrototypeIsPrototypeOf(Headers.prototype, init) ? new Headers(init) : new Headers(init ?? undefined);
}

// --- bodies -------------------------------------------------------------------

// What a body was given as, reduced to bytes or a stream, plus the
// Content-Type the standard derives from it.
function extractBody(init) {
  if (typeof init === "string") {
    return { bytes: encoder.encode(init), type: "text/plain;charset=UTF-8" };
  }
  if (ObjectPrototypeIsPrototypeOf(url.URLSearchParams.prototype, init)) {
    return { bytes: encoder.encode(init.toString()), type: "application/x-www-form-urlencoded;charset=UTF-8" };
  }
  if (isReadableStream(init)) {
    if (init.locked || streams().isReadableStreamDisturbed(init)) {
      throw new TypeError("The body's ReadableStream is locked or already read");
    }
    return { stream: init, type: null };
  }
  if (ArrayBufferIsView(init)) {
    // A copy: the caller may change its buffer after building the body.
    const view = new Uint8Array(
      TypedArrayPrototypeGetBuffer(init),
      TypedArrayPrototypeGetByteOffset(init),
      TypedArrayPrototypeGetByteLength(init),
    );
    return { bytes: TypedArrayPrototypeSlice(view), type: null };
  }
  if (core.isAnyArrayBuffer(init)) {
    return { bytes: new Uint8Array(ArrayBufferPrototypeSlice(init, 0, ArrayBufferPrototypeGetByteLength(init))), type: null };
  }
  if (init !== null && typeof init === "object" && typeof init[primordials.SymbolAsyncIterator] === "function") {
    return { stream: streams().ReadableStream.from(init), type: null };
  }
  // Anything else is turned into a string, as the standard's USVString
  // overload does (Blob and FormData are not offered in ssrd).
  return { bytes: encoder.encode(String(init)), type: "text/plain;charset=UTF-8" };
}

// A body's state: its bytes (read without a stream, the common case) or
// its stream, and whether it was read. Shared by Request and Response.
class Body {
  bytes = null;
  stream = null;
  used = false;

  constructor(extracted) {
    if (extracted !== null) {
      this.bytes = extracted.bytes ?? null;
      this.stream = extracted.stream ?? null;
    }
  }

  isNull() {
    return this.bytes === null && this.stream === null;
  }

  // The body as a ReadableStream, made on first access.
  readable() {
    if (this.stream === null && this.bytes !== null) {
      const bytes = this.bytes;
      this.bytes = null;
      this.stream = new (streams().ReadableStream)({
        type: "bytes",
        start(controller) {
          if (TypedArrayPrototypeGetByteLength(bytes) > 0) controller.enqueue(bytes);
          controller.close();
        },
      });
    }
    return this.stream;
  }

  disturbed() {
    return this.used || (this.stream !== null && streams().isReadableStreamDisturbed(this.stream));
  }

  // All of the body's bytes, once.
  consume(what) {
    if (this.disturbed()) {
      return PromiseReject(new TypeError(`${what}: the body has already been read`));
    }
    if (this.stream !== null && this.stream.locked) {
      return PromiseReject(new TypeError(`${what}: the body's stream is locked`));
    }
    this.used = true;
    if (this.stream === null) {
      return PromiseResolve(this.bytes ?? new Uint8Array(0));
    }
    return streams().readableStreamCollectIntoUint8Array(this.stream);
  }

  // A second, independent copy of this body (the stream is teed).
  clone(what) {
    if (this.disturbed() || (this.stream !== null && this.stream.locked)) {
      throw new TypeError(`${what}: cannot clone a body that has been read or locked`);
    }
    const copy = new Body(null);
    if (this.stream !== null) {
      const branches = streams().readableStreamTee(this.stream, true);
      this.stream = branches[0];
      copy.stream = branches[1];
    } else {
      copy.bytes = this.bytes;
    }
    return copy;
  }
}

// The readers Request and Response share. `bodyOf` gives the private
// Body of `this` (or throws for a foreign receiver).
function defineBodyReaders(proto, bodyOf, name) {
  const methods = {
    arrayBuffer() {
      return PromisePrototypeThen(bodyOf(this).consume(`${name}.arrayBuffer`), (bytes) =>
        ArrayBufferPrototypeSlice(
          TypedArrayPrototypeGetBuffer(bytes),
          TypedArrayPrototypeGetByteOffset(bytes),
          TypedArrayPrototypeGetByteOffset(bytes) + TypedArrayPrototypeGetByteLength(bytes),
        ));
    },
    bytes() {
      return bodyOf(this).consume(`${name}.bytes`);
    },
    text() {
      return PromisePrototypeThen(bodyOf(this).consume(`${name}.text`), utf8);
    },
    json() {
      return PromisePrototypeThen(bodyOf(this).consume(`${name}.json`), (bytes) => JSONParse(utf8(bytes)));
    },
    formData() {
      bodyOf(this);
      return PromiseReject(
        new TypeError(`${name}.formData() is not available in ssrd's render sandbox: read the body with text() and parse it with URLSearchParams`),
      );
    },
    blob() {
      bodyOf(this);
      return PromiseReject(new TypeError(`${name}.blob() is not available in ssrd's render sandbox: use arrayBuffer() or bytes()`));
    },
  };
  for (const key in methods) {
    ObjectDefineProperty(proto, key, { __proto__: null, value: methods[key], writable: true, enumerable: true, configurable: true });
  }
  ObjectDefineProperty(proto, "body", {
    __proto__: null,
    get() {
      return bodyOf(this).readable();
    },
    enumerable: true,
    configurable: true,
  });
  ObjectDefineProperty(proto, "bodyUsed", {
    __proto__: null,
    get() {
      return bodyOf(this).disturbed();
    },
    enumerable: true,
    configurable: true,
  });
}

// --- Request ------------------------------------------------------------------

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

// --- Response -----------------------------------------------------------------

const NULL_BODY_STATUSES = [101, 103, 204, 205, 304];
const REDIRECT_STATUSES = [301, 302, 303, 307, 308];
// The standard's reason-phrase: tab, space and visible characters.
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]*$/;

function includes(list, value) {
  for (const v of new SafeArrayIterator(list)) {
    if (v === value) return true;
  }
  return false;
}

let responseBody;
// Lets the static constructors build what `new Response` refuses (status
// 0 for error()); undefined to anyone else.
let internalResponse;

class Response {
  #status = 200;
  #statusText = "";
  #headers;
  #body;
  #type = "default";
  #url = "";
  #redirected = false;

  constructor(body = null, init = undefined) {
    if (init !== undefined && init !== null && typeof init !== "object") {
      throw new TypeError("Response: init must be an object");
    }
    init ??= {};
    const status = init.status !== undefined ? primordials.NumberIsInteger(+init.status) ? +init.status : NaN : 200;
    if (!(status >= 200 && status <= 599)) {
      throw new RangeError(`Response: status must be an integer from 200 to 599, got ${String(init.status)}`);
    }
    const statusText = init.statusText !== undefined ? String(init.statusText) : "";
    if (!RegExpPrototypeTest(REASON_PHRASE, statusText)) throw new TypeError("Response: invalid statusText");
    this.#status = status;
    this.#statusText = statusText;
    this.#headers = init.headers !== undefined ? headersFrom(init.headers) : new Headers();
    if (body !== null && body !== undefined) {
      if (includes(NULL_BODY_STATUSES, status)) {
        throw new TypeError(`Response: a response with status ${status} cannot have a body`);
      }
      const extracted = extractBody(body);
      if (extracted.type !== null && !this.#headers.has("content-type")) {
        this.#headers.append("content-type", extracted.type);
      }
      this.#body = new Body(extracted);
    } else {
      this.#body = new Body(null);
    }
  }

  static {
    responseBody = (response) => {
      if (!ObjectPrototypeIsPrototypeOf(Response.prototype, response)) throw new TypeError("Illegal invocation: not a Response");
      return response.#body;
    };
    internalResponse = (fields) => {
      const r = new Response(null);
      if (fields.status !== undefined) r.#status = fields.status;
      if (fields.type !== undefined) r.#type = fields.type;
      if (fields.headers !== undefined) r.#headers = fields.headers;
      return r;
    };
  }

  static error() {
    const headers = new Headers();
    setGuard(headers, IMMUTABLE);
    return internalResponse({ status: 0, type: "error", headers });
  }

  static redirect(location, status = 302) {
    const href = parseUrl(location, "Response.redirect");
    status = +status;
    if (!includes(REDIRECT_STATUSES, status)) {
      throw new RangeError(`Response.redirect: status must be one of 301, 302, 303, 307, 308, got ${String(status)}`);
    }
    const headers = new Headers([["location", href]]);
    setGuard(headers, IMMUTABLE);
    return internalResponse({ status, headers });
  }

  static json(data, init = undefined) {
    const text = JSONStringify(data);
    if (text === undefined) throw new TypeError("Response.json: the data cannot be serialised to JSON");
    const response = new Response(encoder.encode(text), init);
    if (!response.#headers.has("content-type")) response.#headers.set("content-type", "application/json");
    return response;
  }

  get type() {
    return this.#type;
  }

  get url() {
    return this.#url;
  }

  get redirected() {
    return this.#redirected;
  }

  get status() {
    return this.#status;
  }

  get ok() {
    return this.#status >= 200 && this.#status <= 299;
  }

  get statusText() {
    return this.#statusText;
  }

  get headers() {
    return this.#headers;
  }

  clone() {
    const copy = internalResponse({ status: this.#status, type: this.#type, headers: new Headers(this.#headers) });
    copy.#statusText = this.#statusText;
    copy.#url = this.#url;
    copy.#redirected = this.#redirected;
    copy.#body = this.#body.clone("Response.clone");
    return copy;
  }

  get [SymbolToStringTag]() {
    return "Response";
  }

  [SymbolFor("Deno.customInspect")]() {
    return `Response { status: ${this.#status}, statusText: ${JSONStringify(this.#statusText)} }`;
  }
}
defineBodyReaders(Response.prototype, responseBody, "Response");

// --- fetch ----------------------------------------------------------------------

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
