// ssrd host script: the entry point of the host's JS, run once per isolate
// before the bundle. It installs everything in order and hands the worker
// its glue; each job is done in a file of its own:
//
//   fetch_classes.js  Headers, Request, Response and fetch (fetch_*.js)
//   deno_web.js       the deno_web scripts the globals come from
//   util.js           two helpers several files share
//   job_scope.js      timers and message channels tied to their job
//   bundle_log.js     console output and unhandled rejections as log lines
//   offheap_budget.js buffers and Wasm memories charged to the budget
//   late_callbacks.js FinalizationRegistry and Atomics.waitAsync off
//   globals.js        the table of globals (node_compat.js, web_streams.js)
//   render_glue.js    the calls into globalThis.ssrd (answers.js)
//   between_jobs.js   afterJob: what is reset between two callers
//   lockdown.js       built-ins frozen once the bundle is loaded
//
// Order matters, and it is all here. The imported files only define and
// capture when they are evaluated (so every built-in they keep is the
// original); the changes to built-ins and globals are made below, one
// step after another, and the names of the globals are recorded after the
// last one. fetch_classes.js is imported first: it loads deno_web's
// encoding, URL and abort scripts, then deno_web.js loads the rest. The
// worker calls lockdown() last of all, once the bundle is evaluated.
import { primordials } from "ext:core/mod.js";
import "ext:ssrd_host/fetch_classes.js";
import { performanceMod } from "ext:ssrd_host/deno_web.js";
import { installJobScope } from "ext:ssrd_host/job_scope.js";
import { installRejectionLog } from "ext:ssrd_host/bundle_log.js";
import { installOffheapBudget } from "ext:ssrd_host/offheap_budget.js";
import { disableLateCallbacks } from "ext:ssrd_host/late_callbacks.js";
import { installGlobals } from "ext:ssrd_host/globals.js";
import { installStreams } from "ext:ssrd_host/web_streams.js";
import { cachePolicies, checkContract, markupMode, renderJob, warmupJobs } from "ext:ssrd_host/render_glue.js";
import { afterJob } from "ext:ssrd_host/between_jobs.js";
import { lockdown } from "ext:ssrd_host/lockdown.js";

const { ObjectDefineProperty } = primordials;

installJobScope();
installRejectionLog();
installOffheapBudget();
disableLateCallbacks();
installGlobals();

// Runs just before a snapshot is taken: what is loaded lazily must be in
// it, because an isolate started from a snapshot cannot load deno_web's
// scripts any more.
function beforeSnapshot() {
  installStreams();
}

// Runs after the isolate starts, snapshot or not: per-process state that a
// snapshot must not freeze.
function onStart() {
  performanceMod.setTimeOrigin();
}

// Every global the host installed (and the language's own), recorded before
// any bundle code runs: lockdown() locks them.
const HOST_GLOBALS = primordials.ReflectOwnKeys(globalThis);

function lockdownHost() {
  lockdown(HOST_GLOBALS);
}

// Handed to the worker, then moved out of the bundle's reach (sandbox.rs)
// before any bundle code runs: everything above is captured in closures.
ObjectDefineProperty(
  globalThis,
  "__ssrdHost",
  {
    __proto__: null,
    value: {
      renderJob,
      checkContract,
      cachePolicies,
      markupMode,
      warmupJobs,
      onStart,
      afterJob,
      lockdown: lockdownHost,
      beforeSnapshot,
    },
    enumerable: false,
    configurable: true,
  },
);
