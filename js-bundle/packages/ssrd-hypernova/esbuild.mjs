// esbuild recipe: build an unchanged Hypernova app for ssrd.
//
//   import { build } from "esbuild";
//   import { ssrdServerOptions, ssrdClientOptions } from "ssrd-hypernova/esbuild";
//   await build(ssrdServerOptions({ entryPoints: ["hypernova.js"], outfile: "dist/ssrd-server.js" }));
//   await build(ssrdClientOptions({ entryPoints: ["client.js"], outfile: "dist/client.js" }));
//
// What it does (docs/hypernova.md says why):
// - server build: `hypernova/server` → server.cjs (installs globalThis.ssrd
//   instead of starting Express), `hypernova-react` → react-server.js; one
//   classic script (IIFE) for the browser platform, so react-dom/server's
//   web build is used; `process` is a stub whose `env` is empty, so
//   `process.env.PORT || 3030` in a server file still evaluates.
//   It writes a source map beside the bundle (`sourcemap: "linked"`:
//   `<outfile>.map` and a `//# sourceMappingURL=` comment naming it), which
//   the worker applies to failed jobs' stacks (ssrd's docs/worker.md,
//   "Source maps"); pass `sourcemap: false` to build without one.
// - client build: `hypernova-react` → react-client.js (hydrateRoot); no map
//   unless asked for (publishing one is the app's choice).
// - the adapter's own imports of react and react-dom resolve from the app
//   (absWorkingDir), never from where this package sits (installed by path,
//   it is a link into ssrd's checkout): one copy of React per bundle.
//
// Both functions take esbuild options and return them with these added;
// anything passed in wins over the defaults below, except `plugins`, which
// is extended.
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const adapterFiles = {
  server: path.join(HERE, "server.cjs"),
  reactServer: path.join(HERE, "react-server.js"),
  reactClient: path.join(HERE, "react-client.js"),
  processStub: path.join(HERE, "process-stub.js"),
};

/**
 * The esbuild plugin: maps the two Hypernova imports onto the adapter and
 * resolves the adapter's bare imports (react, react-dom/…) from `appDir`.
 * `side` is "server" or "client". `keepHypernovaReact` (server side only)
 * leaves hypernova-react itself in the server bundle: it works there too,
 * but its markup lacks ssrd's "<" escape (docs/hypernova.md).
 */
export function hypernovaForSsrd({ side, appDir = process.cwd(), keepHypernovaReact = false }) {
  if (side !== "server" && side !== "client") throw new TypeError('hypernovaForSsrd: side must be "server" or "client"');
  const targets = {};
  if (side === "server") targets["hypernova/server"] = adapterFiles.server;
  if (side === "client") targets["hypernova-react"] = adapterFiles.reactClient;
  else if (!keepHypernovaReact) targets["hypernova-react"] = adapterFiles.reactServer;
  const inAdapter = (file) => file.startsWith(HERE + path.sep);
  return {
    name: "hypernova-for-ssrd",
    setup(build) {
      build.onResolve({ filter: /^(hypernova\/server|hypernova-react)$/ }, (args) => {
        const target = targets[args.path];
        return target ? { path: target } : undefined;
      });
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (!inAdapter(args.importer) || args.pluginData?.fromAdapter) return undefined;
        const found = await build.resolve(args.path, {
          kind: args.kind,
          resolveDir: appDir,
          pluginData: { fromAdapter: true },
        });
        return found.errors.length > 0 ? { errors: found.errors } : found;
      });
    },
  };
}

const shared = {
  bundle: true,
  minify: true,
  legalComments: "none",
  // Hypernova apps commonly write JSX in .js files.
  loader: { ".js": "jsx" },
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
};

/**
 * Options for the ssrd server bundle (the file `ssrd worker --bundle` loads).
 * `keepHypernovaReact: true` is passed on to the plugin.
 */
export function ssrdServerOptions({ keepHypernovaReact = false, ...options } = {}) {
  const appDir = options.absWorkingDir ?? process.cwd();
  return {
    ...shared,
    format: "iife",
    platform: "browser",
    target: "es2022",
    sourcemap: "linked",
    inject: [adapterFiles.processStub],
    ...options,
    plugins: [hypernovaForSsrd({ side: "server", appDir, keepHypernovaReact }), ...(options.plugins ?? [])],
  };
}

/** Options for the browser bundle of the same app. */
export function ssrdClientOptions(options = {}) {
  const appDir = options.absWorkingDir ?? process.cwd();
  return {
    ...shared,
    format: "iife",
    platform: "browser",
    target: "es2020",
    ...options,
    plugins: [hypernovaForSsrd({ side: "client", appDir }), ...(options.plugins ?? [])],
  };
}
