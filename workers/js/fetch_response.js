// ssrd's Response: status, statusText, ok, headers, type, url, redirected,
// a body (fetch_body.js), clone(), and the static error(), redirect() and
// json(), as the fetch standard has them.
//
// Its own file, one class as the standard describes it.
import { primordials } from "ext:core/mod.js";
import { Headers, headersFrom, IMMUTABLE, setGuard } from "ext:ssrd_host/fetch_headers.js";
import { Body, defineBodyReaders, encoder, extractBody } from "ext:ssrd_host/fetch_body.js";
import { parseUrl } from "ext:ssrd_host/fetch_request.js";

const {
  JSONStringify,
  ObjectPrototypeIsPrototypeOf,
  RangeError,
  RegExpPrototypeTest,
  SafeArrayIterator,
  String,
  SymbolFor,
  SymbolToStringTag,
  TypeError,
} = primordials;

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

export { Response };
