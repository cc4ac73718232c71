// ssrd's Headers: the fetch standard's header list, case-insensitive,
// ordered and iterable (sorted and combined as the standard says,
// `set-cookie` kept apart), with a guard so the headers of
// `Response.error()`/`Response.redirect()` cannot change.
//
// Its own file because Headers stands alone: Request and Response only
// build one (headersFrom) and, for Response's static constructors, lock one
// (setGuard, IMMUTABLE). fetch_classes.js says why these classes are
// ssrd's own.
import { primordials } from "ext:core/mod.js";

const {
  ArrayPrototypePush,
  ArrayPrototypeSort,
  ArrayPrototypeSplice,
  JSONStringify,
  ObjectPrototypeIsPrototypeOf,
  RegExpPrototypeTest,
  SafeArrayIterator,
  String,
  StringPrototypeCharCodeAt,
  StringPrototypeToLowerCase,
  SymbolFor,
  SymbolIterator,
  SymbolToStringTag,
  TypeError,
} = primordials;

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
// other caller, so a bundle cannot reach in (it is exported only to the
// other fetch files: bundle code cannot import an `ext:` module).
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

export { Headers, headersFrom, IMMUTABLE, setGuard, TOKEN };
