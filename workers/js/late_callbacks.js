// Built-ins whose callbacks V8 runs whenever it gets round to them, which
// is during some later caller's job: FinalizationRegistry never calls back,
// and Atomics.waitAsync is not there.
//
// Its own file because these are not tracked and cleared like the job's
// timers (job_scope.js): they are switched off once, for the isolate's
// life. The off-heap budget's own registry (offheap_budget.js) is
// primordials' SafeFinalizationRegistry, which kept the original register:
// its refunds still run.
import { primordials } from "ext:core/mod.js";
import { writable } from "ext:ssrd_host/util.js";

const { ObjectDefineProperty, TypeError } = primordials;

// FinalizationRegistry callbacks run whenever V8 collects garbage, which is
// during some later job: in ssrd they never run at all (the language allows
// it: a callback is never guaranteed). register() still checks its
// arguments as the standard does.
function register(target, _held, _token) {
  if ((target === null || typeof target !== "object") && typeof target !== "function" && typeof target !== "symbol") {
    throw new TypeError("FinalizationRegistry.prototype.register: invalid target");
  }
  return undefined;
}

function unregister(token) {
  if ((token === null || typeof token !== "object") && typeof token !== "function" && typeof token !== "symbol") {
    throw new TypeError("FinalizationRegistry.prototype.unregister: invalid unregister token");
  }
  return false;
}

export function disableLateCallbacks() {
  ObjectDefineProperty(FinalizationRegistry.prototype, "register", writable(register));
  ObjectDefineProperty(FinalizationRegistry.prototype, "unregister", writable(unregister));
  // Atomics.waitAsync resumes its caller from a timer V8 keeps, in whichever
  // job runs when it fires: not available (Atomics.wait still is).
  delete Atomics.waitAsync;
}
