// The bodies Request and Response share: what a body may be built from
// (strings, buffers, URLSearchParams, ReadableStreams, async iterables),
// its state (bytes, or a stream once one is asked for; read or not), and
// the readers both classes offer (text(), json(), arrayBuffer(), bytes(),
// body, bodyUsed; formData() and blob() reject saying why).
//
// Its own file because both classes use all of it and neither owns it; it
// is also the only part that touches deno_web's streams, loaded only once a
// body is used as a stream.
import { core, primordials } from "ext:core/mod.js";

const {
  ArrayBufferIsView,
  ArrayBufferPrototypeGetByteLength,
  ArrayBufferPrototypeSlice,
  JSONParse,
  ObjectDefineProperty,
  ObjectPrototypeIsPrototypeOf,
  PromisePrototypeThen,
  PromiseReject,
  PromiseResolve,
  String,
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

// deno_web's streams, evaluated only once a body is used as a stream (the
// script is large; web_streams.js installs the stream globals lazily too, and
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

export { Body, defineBodyReaders, encoder, extractBody };
