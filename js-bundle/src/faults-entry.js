// Entry of dist/faults.js: the components of server.js (not its modern
// examples, which only add load time here) plus components that
// misbehave on purpose, for tests and chaos runs. Never deploy this bundle.
import { components } from "./registry.js";
import { installServerRenderer } from "./ssr.js";
import { helloWorldProps } from "./sample-data.js";

// Retained across calls on purpose: this is what a leak looks like.
const leaked = [];

// How many async renders were in flight at once, ever. The worker promises
// one render at a time, so this must never exceed 1.
let active = 0;
let maxActive = 0;

function Throws({ message = "Throws: this component always fails" }) {
  throw new Error(message);
}

function ThrowsValue({ value = "a thrown string, not an Error" }) {
  throw value;
}

function Runaway() {
  // A render that never ends; only the worker's watchdog can stop it.
  for (;;) {
    /* spin */
  }
}

function Leak({ mb = 16 }) {
  // Each call keeps about `mb` megabytes of JS heap reachable forever (a
  // plain array of doubles lives on the V8 heap, unlike a typed array's
  // backing store, so it counts against the isolate's heap limit).
  const chunk = new Array((mb * 1024 * 1024) / 8);
  for (let i = 0; i < chunk.length; i++) chunk[i] = i + 0.5;
  leaked.push(chunk);
  return `leaked ${leaked.length * mb} MB so far`;
}

function Slow({ ms = 100 }) {
  // Busy CPU for `ms` milliseconds: a slow but finite render.
  const until = Date.now() + ms;
  let n = 0;
  while (Date.now() < until) n++;
  return `slow ${n > 0 ? "done" : "instant"}`;
}

installServerRenderer(
  { ...components, Throws, ThrowsValue, Runaway, Leak, Slow },
  {
    warmup: [{ name: "HelloWorld", props: helloWorldProps() }],
    extra: {
      // Resolves later, through a timer: exercises async renders.
      Deferred: ({ ms = 10, html = "<p>deferred</p>" } = {}) => {
        active++;
        maxActive = Math.max(maxActive, active);
        return new Promise((resolve) =>
          setTimeout(() => {
            active--;
            resolve(html);
          }, ms),
        );
      },
      // Reports the most async renders ever in flight at once.
      Concurrency: () => `${maxActive}`,
      // Returns meta beside the HTML, as the contract allows.
      WithMeta: (props) => ({ html: "<p>with meta</p>", meta: { seen: props } }),
      // Reports how much this isolate has leaked so far.
      LeakStats: () => `<p>${leaked.length} chunks</p>`,
    },
  },
);
