// The deno_web scripts the host builds its globals from, each loaded once,
// here.
//
// Its own file because several host files use the same scripts (timers in
// the tracked timers and the globals, performance in the globals and the
// reset between jobs, ...), and because the order in which they are first
// evaluated is part of how an isolate starts: one list keeps that order in
// one place. The fetch classes (fetch_body.js, fetch_request.js) load the
// encoding, URL and abort scripts before this file runs (host.js imports
// fetch_classes.js first); loading one again here only hands back the same
// module (loadExtScript evaluates a script once per isolate).
import { core } from "ext:core/mod.js";

const load = (specifier) => core.loadExtScript(specifier);

export const consoleMod = load("ext:deno_web/01_console.js");
export const url = load("ext:deno_web/00_url.js");
export const timers = load("ext:deno_web/02_timers.js");
export const encoding = load("ext:deno_web/08_text_encoding.js");
export const base64 = load("ext:deno_web/05_base64.js");
export const clone = load("ext:deno_web/02_structured_clone.js");
export const performanceMod = load("ext:deno_web/15_performance.js");
export const domException = load("ext:deno_web/01_dom_exception.js");
export const event = load("ext:deno_web/02_event.js");
export const abort = load("ext:deno_web/03_abort_signal.js");
export const messagePort = load("ext:deno_web/13_message_port.js");
