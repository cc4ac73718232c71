// What the bundle writes, as the worker's log lines: its console output
// (under a per-job budget) and the promise rejections it leaves unhandled.
//
// Its own file because both end up on the worker's stderr as JSON lines
// that must never pass for the worker's own log or reach the supervisor's
// event channel, and because the budget is per job: between_jobs.js resets
// it, globals.js hands printConsole to deno_web's Console.
import { core, primordials } from "ext:core/mod.js";
import { clip } from "ext:ssrd_host/util.js";

const {
  DateNow,
  ErrorPrototype,
  JSONStringify,
  ObjectPrototypeIsPrototypeOf,
  String,
  StringPrototypeEndsWith,
  StringPrototypeSlice,
} = primordials;

// A rejection nobody handled is the bundle's bug, not a reason to fail
// whichever job happens to poll the event loop next: log it and go on.
//
// deno_core calls this while it polls the event loop, which may be during
// a later job: so it reads nothing that could run the bundle's code (no
// getter, no toString, no proxy trap), only what the value holds as data.
export function installRejectionLog() {
  core.setUnhandledPromiseRejectionHandler((_promise, reason) => {
    logLine("error", "bundle_unhandled_rejection", "unhandled promise rejection in the bundle", inertDescription(reason));
    return true;
  });
}

function inertDescription(value) {
  if (typeof value === "string") return clip(value, 1024);
  if (value === null || (typeof value !== "object" && typeof value !== "function")) {
    return typeof value === "symbol" ? "a Symbol" : clip(String(value), 1024);
  }
  if (core.isProxy(value)) return "a Proxy";
  const message = primordials.ObjectGetOwnPropertyDescriptor(value, "message");
  const text = message !== undefined && typeof message.value === "string" ? clip(message.value, 1024) : "";
  const kind = ObjectPrototypeIsPrototypeOf(ErrorPrototype, value) ? "an Error" : `a ${typeof value}`;
  return text === "" ? kind : `${kind}: ${text}`;
}

// console output becomes JSON log lines on the worker's stderr, one per
// call: it cannot pass for the worker's own log lines, and never reaches
// the supervisor's event channel. Each job may write 200 lines or 64 KiB;
// the rest is dropped, with one note.
const CONSOLE_LINES = 200;
const CONSOLE_BYTES = 64 * 1024;
const consoleBudget = { lines: 0, bytes: 0, noted: false };

// `event` is one of the worker's LogEvent names (workers/src/log.rs).
function logLine(level, event, msg, text) {
  core.print(JSONStringify({ ts: DateNow() / 1000, level, msg, event, text }) + "\n", true);
}

// deno_web's Console prints through this.
export function printConsole(text, level) {
  consoleBudget.lines++;
  consoleBudget.bytes += text.length;
  if (consoleBudget.lines > CONSOLE_LINES || consoleBudget.bytes > CONSOLE_BYTES) {
    if (!consoleBudget.noted) {
      consoleBudget.noted = true;
      logLine("warn", "bundle_console", "bundle console", "(this job's console output passed 200 lines / 64 KiB; the rest is dropped)");
    }
    return;
  }
  const line = StringPrototypeEndsWith(text, "\n") ? StringPrototypeSlice(text, 0, -1) : text;
  logLine(level > 1 ? "warn" : "info", "bundle_console", "bundle console", line);
}

// The next job starts with its whole budget.
export function resetConsoleBudget() {
  consoleBudget.lines = 0;
  consoleBudget.bytes = 0;
  consoleBudget.noted = false;
}
