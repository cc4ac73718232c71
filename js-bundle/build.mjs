// Builds dist/server.js, dist/faults.js (server side, one classic script each,
// evaluated once per ssrd worker), dist/client.js (browser), dist/node.cjs
// (the same components for the reference Hypernova server in bench/) and
// dist/node-modern.cjs (the modern examples built for Node, for
// tests/node_parity.rs). Each but client.js has a source map beside it.
import { builtinModules } from "node:module";
import { build } from "esbuild";

const common = {
  bundle: true,
  minify: true,
  legalComments: "none",
  jsx: "automatic",
  loader: { ".js": "jsx" },
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
};

// Server bundles: an IIFE that installs globalThis.ssrd, resolved the way
// server runtimes without Node resolve packages (Vercel's edge, Cloudflare's
// workerd), because that is what the ssrd worker is: web APIs, no Node
// built-ins. "neutral" uses no platform defaults. The edge conditions pick
// react-dom/server's and react-dom/static's edge builds (server.edge.js,
// static.edge.js: timers for scheduling; the browser builds keep a
// MessageChannel made at load, which a V8 snapshot cannot carry) and
// Emotion's server-capable edge build; "worker" the web build of packages
// that know no edge condition; "module" the ESM builds (react-router);
// mainFields ["module", "main"] pick styled-components' server build for
// packages without an exports map (the "browser" field, which "browser"
// platform follows, swaps in builds that need a DOM). Node's built-in modules stay
// external: server builds keep a few `require("stream")`s in code paths a
// render never takes (styled-components' interleaveWithNodeStream); if one
// is taken after all, the worker's `require` says what went wrong.
// README: "The bundle contract".
// Server-side builds write a source map beside the bundle
// (dist/server.js.map ...) and end with a `//# sourceMappingURL=` comment
// naming it ("linked"): the worker maps a failed job's stack to the
// original files and lines with it (docs/worker.md, "Source maps"), and
// Node (--enable-source-maps) finds it the same way. A comment changes
// nothing the bundle does. The browser bundle has no map: whether to
// publish one is a deployment's choice.
const withMap = { sourcemap: "linked" };
const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];
const server = {
  ...common,
  ...withMap,
  format: "iife",
  platform: "neutral",
  conditions: ["edge-light", "workerd", "worker", "module"],
  mainFields: ["module", "main"],
  external: nodeBuiltins,
  target: "es2022",
};

await Promise.all([
  build({ ...server, entryPoints: ["src/server-entry.js"], outfile: "dist/server.js" }),
  build({ ...server, entryPoints: ["src/faults-entry.js"], outfile: "dist/faults.js" }),
  build({ ...common, format: "iife", platform: "browser", target: "es2020", entryPoints: ["src/client-entry.js"], outfile: "dist/client.js" }),
  build({ ...common, ...withMap, format: "cjs", platform: "node", target: "node18", entryPoints: ["src/node-entry.js"], outfile: "dist/node.cjs" }),
  build({ ...common, ...withMap, format: "cjs", platform: "node", target: "node18", entryPoints: ["src/node-modern-entry.js"], outfile: "dist/node-modern.cjs" }),
]);
console.log("built dist/server.js dist/faults.js dist/client.js dist/node.cjs dist/node-modern.cjs (and their .map files, but client.js's)");
