// Builds the app twice over, from the same, unchanged sources:
//   for ssrd, with ssrd-hypernova's esbuild recipe (a devDependency by path,
//   from js-bundle/packages/ssrd-hypernova/):
//     ssrd-server.js          the server bundle (`ssrd worker --bundle`)
//     ssrd-plugins.js         the same with a server plugin (plugins-server.js)
//     ssrd-server-hnreact.js  the server bundle with hypernova-react itself
//                             (only hypernova/server mapped), for comparison
//     client.js               the browser bundle (hydrateRoot)
//   for the real Hypernova on Node, nothing mapped, packages left to Node:
//     hypernova-node.cjs, hypernova-plugins-node.cjs
// Usage: node build.mjs [OUTDIR]  (default dist; must sit inside this
// folder, so that Node finds node_modules from the .cjs files).
import { build } from "esbuild";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ssrdClientOptions, ssrdServerOptions } from "ssrd-hypernova/esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(here, process.argv[2] ?? "dist");
const out = (file) => path.join(outdir, file);
const app = { absWorkingDir: here, logLevel: "warning" };

const forNode = {
  ...app,
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node18",
  packages: "external",
  loader: { ".js": "jsx" },
};

await Promise.all([
  build(ssrdServerOptions({ ...app, entryPoints: ["server.js"], outfile: out("ssrd-server.js") })),
  build(ssrdServerOptions({ ...app, entryPoints: ["plugins-server.js"], outfile: out("ssrd-plugins.js") })),
  build(ssrdServerOptions({ ...app, keepHypernovaReact: true, entryPoints: ["server.js"], outfile: out("ssrd-server-hnreact.js") })),
  build(ssrdClientOptions({ ...app, entryPoints: ["client.js"], outfile: out("client.js") })),
  build({ ...forNode, entryPoints: ["server.js"], outfile: out("hypernova-node.cjs") }),
  build({ ...forNode, entryPoints: ["plugins-server.js"], outfile: out("hypernova-plugins-node.cjs") }),
]);
console.log(`built ${path.relative(process.cwd(), outdir) || "."}/`);
