// Two small helpers that several host files share: the property descriptor
// every replaced built-in and installed global gets, and the clipping of
// text a bundle hands over.
//
// Its own file so that no host file has to import another one only for
// these (which would tie, say, the console log to the answer records).
import { primordials } from "ext:core/mod.js";

const { StringPrototypeSlice } = primordials;

// A data property as the web platform's globals have them: writable,
// configurable, not enumerable.
export function writable(value) {
  return { __proto__: null, value, writable: true, enumerable: false, configurable: true };
}

// `text`, cut to `max` characters with a marker when longer.
export function clip(text, max) {
  return text.length > max ? StringPrototypeSlice(text, 0, max) + "...(truncated)" : text;
}
