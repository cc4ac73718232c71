// What runs between two callers' jobs: afterJob(), which the worker calls
// once a job's answer is in.
//
// It ends the job's timers and message channels (job_scope.js), gives the
// next job a fresh console budget (bundle_log.js), and resets the state of
// the language and the web APIs that no freezing reaches (lockdown.js
// freezes the rest): RegExp's legacy statics and the performance timeline.
//
// Its own file so that everything one caller could leave for the next is
// reset in one place, named for when it runs.
import { primordials } from "ext:core/mod.js";
import { performanceMod } from "ext:ssrd_host/deno_web.js";
import { endJob } from "ext:ssrd_host/job_scope.js";
import { resetConsoleBudget } from "ext:ssrd_host/bundle_log.js";

const { ObjectGetPrototypeOf, ReflectApply, RegExpPrototypeExec } = primordials;

const EMPTY_MATCH = /(?:)/;
const performanceProto = ObjectGetPrototypeOf(performanceMod.performance);
const clearMarks = performanceProto.clearMarks;
const clearMeasures = performanceProto.clearMeasures;
const performanceClearMarks = () => ReflectApply(clearMarks, performanceMod.performance, []);
const performanceClearMeasures = () => ReflectApply(clearMeasures, performanceMod.performance, []);

// Called by the worker once a job's answer is in (under a short deadline of
// its own: closing a port can run the bundle's message handlers).
export function afterJob() {
  endJob();
  resetConsoleBudget();
  // State of the language and the web APIs that no freezing reaches,
  // reset so the next job cannot read it: RegExp's legacy statics
  // (RegExp.$1, lastMatch, input, leftContext, ...: a match on an empty
  // string empties them) and the performance timeline.
  RegExpPrototypeExec(EMPTY_MATCH, "");
  performanceClearMarks();
  performanceClearMeasures();
}
