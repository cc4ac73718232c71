// Builds dist/server.js, dist/faults.js (server side, one classic script each,
// evaluated once per ssrd worker), dist/client.js (browser) and dist/node.cjs
// (the same components for the reference Hypernova server in bench/).
import { build } from "esbuild";

const common = {
  bundle: true,
  minify: true,
  sourcemap: false,
  legalComments: "none",
  jsx: "automatic",
  loader: { ".js": "jsx" },
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
};

// Server bundles: an IIFE that installs globalThis.ssrd. "browser" platform
// picks react-dom/server's web build: no Node built-ins, only web APIs.
const server = { ...common, format: "iife", platform: "browser", target: "es2022" };

await Promise.all([
  build({ ...server, entryPoints: ["src/server-entry.js"], outfile: "dist/server.js" }),
  build({ ...server, entryPoints: ["src/faults-entry.js"], outfile: "dist/faults.js" }),
  build({ ...common, format: "iife", platform: "browser", target: "es2020", entryPoints: ["src/client-entry.js"], outfile: "dist/client.js" }),
  build({ ...common, format: "cjs", platform: "node", target: "node18", entryPoints: ["src/node-entry.js"], outfile: "dist/node.cjs" }),
]);
console.log("built dist/server.js dist/faults.js dist/client.js dist/node.cjs");
