"use strict";
// Stands in for `hypernova/server` when a Hypernova app is bundled for ssrd
// (esbuild.mjs maps the import here). The app's server file calls it with
// its Hypernova config, as it always has; instead of starting an Express
// server it installs `globalThis.ssrd` (README: "The bundle contract"), so
// the same getComponent serves ssrd's /batch. docs/hypernova.md lists which
// options are honoured and what differs.
//
// CommonJS on purpose: apps write `const hypernova = require("hypernova/server")`
// and call the result, so module.exports must be the function itself.

// How long Hypernova lets an asynchronous plugin hook hold a job up before
// it carries on without it.
const HOOK_WAIT_MS = 300;

const hasOwn = (object, key) => Object.prototype.hasOwnProperty.call(object, key);
const isThenable = (value) =>
  value !== null && (typeof value === "object" || typeof value === "function") && typeof value.then === "function";

// The error a job fails with when getComponent finds nothing: Hypernova's
// name and message, ssrd's way of carrying the status.
function notRegistered(name) {
  const error = new ReferenceError(`Component "${name}" not registered`);
  error.statusCode = 404;
  return error;
}

// Hypernova fails a job whose render function returns an empty value.
function noHtml(name) {
  return new TypeError(`the render function for "${name}" returned no HTML (Hypernova fails such a job as well)`);
}

function notMarkup(name, value) {
  return new TypeError(`the render function for "${name}" must return a string of HTML; got ${typeof value}`);
}

// The per-job object Hypernova hands to getComponent (and, spread into a
// copy with a few batch-level fields, to plugin hooks). `token` is the job's
// key in the batch when ssrd passes it, undefined otherwise.
function jobContext(name, props, ssrdContext) {
  const context = ssrdContext !== null && typeof ssrdContext === "object" ? ssrdContext : {};
  return {
    name,
    token: context.token,
    props,
    metadata: context.metadata,
    statusCode: 200,
    duration: null,
    html: null,
    returnMeta: {},
  };
}

function hasKeys(object) {
  for (const key in object) if (hasOwn(object, key)) return true;
  return false;
}

// The render function's answer, checked the way Hypernova checks it, in the
// shape ssrd's contract wants.
function accept(html, context) {
  if (!html) throw noHtml(context.name);
  if (typeof html !== "string") throw notMarkup(context.name, html);
  context.html = html;
  const meta = context.returnMeta;
  return meta !== null && typeof meta === "object" && hasKeys(meta) ? { html, meta } : html;
}

// getComponent's answer (the render function) applied to the props.
function renderWith(renderFn, context) {
  if (typeof renderFn !== "function") {
    context.statusCode = 404;
    throw notRegistered(context.name);
  }
  const out = renderFn(context.props);
  return isThenable(out) ? Promise.resolve(out).then((html) => accept(html, context)) : accept(out, context);
}

// Resolves when `promise` settles or after HOOK_WAIT_MS, whichever is first;
// rejects if it rejects first.
function boundedWait(promise) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, HOOK_WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function consoleLogger() {
  const write = (level) => (message, meta) => {
    const line = meta === undefined ? String(message) : `${message} ${JSON.stringify(meta)}`;
    if (level === "error") console.error(line);
    else console.log(line);
  };
  return { info: write("info"), error: write("error"), log: (level, message, meta) => write(level)(message, meta) };
}

const logger = consoleLogger();

function install(config) {
  const getComponent = config.getComponent;
  const plugins = Array.isArray(config.plugins) ? config.plugins.filter((p) => p !== null && typeof p === "object") : [];
  const withHook = (hook) => plugins.filter((plugin) => typeof plugin[hook] === "function");

  // `initialize(config)` runs once, when the bundle is evaluated. A promise it
  // returns holds the first renders up (no longer than Hypernova waits); a
  // rejection fails every render, the way it stops a Hypernova server.
  let initialized = null;
  const starting = withHook("initialize").map((plugin) => plugin.initialize(config));
  if (starting.some(isThenable)) {
    initialized = boundedWait(Promise.all(starting));
    initialized.catch(() => {}); // reported through the renders that wait on it
  }

  // Each plugin gets its own copy of the job context, plus a private store
  // that lives as long as the job (Hypernova: as long as the batch).
  function contextsFor(context) {
    const stores = new Map(plugins.map((plugin) => [plugin, new Map()]));
    return (plugin) => ({ request: undefined, response: undefined, batchMeta: {}, ...context, data: stores.get(plugin) });
  }

  async function renderWithPlugins(context) {
    const pluginContext = contextsFor(context);
    const runAsync = (hook) => boundedWait(Promise.all(withHook(hook).map((p) => p[hook](pluginContext(p)))));
    const runSync = (hook) => withHook(hook).forEach((p) => p[hook](pluginContext(p)));
    try {
      if (initialized) await initialized;
      await runAsync("jobStart");
      runSync("beforeRender");
      const result = await renderWith(await getComponent(context.name, context), context);
      runSync("afterRender");
      await runAsync("jobEnd");
      // afterRender may have added to returnMeta after the HTML was taken.
      return typeof result === "string" && hasKeys(context.returnMeta) ? { html: result, meta: context.returnMeta } : result;
    } catch (error) {
      for (const plugin of withHook("onError")) plugin.onError(pluginContext(plugin), error);
      throw error;
    }
  }

  function render(name, props, ssrdContext) {
    const context = jobContext(name, props, ssrdContext);
    if (plugins.length > 0) return renderWithPlugins(context);
    // No plugins: stay synchronous whenever the app is, so a plain
    // getComponent costs no promise round trip.
    const found = getComponent(name, context);
    return isThenable(found) ? Promise.resolve(found).then((fn) => renderWith(fn, context)) : renderWith(found, context);
  }

  const api = { contract: 1, hypernova: true, render };
  if (config.warmup !== undefined) api.warmup = config.warmup;
  globalThis.ssrd = api;
  return api;
}

// The replacement for Hypernova's server entry: `hypernova(config)`.
// Options other than getComponent, plugins and warmup belong to the HTTP
// server, which ssrd provides: they are accepted and ignored. The second
// argument (Hypernova's onServer callback, given the Express app) is never
// called: there is no Express app.
function hypernova(userConfig) {
  const config = { ...hypernova.defaultConfig, ...userConfig };
  if (typeof config.getComponent !== "function") {
    throw new TypeError("hypernova(config) for ssrd: config.getComponent must be a function (name, context) => render function");
  }
  return install(config);
}

// Hypernova's server entry also exports helpers. The pure ones work here;
// the ones built on Node (files, the vm module, Express, cluster) cannot run
// inside an ssrd worker and say so when called.
function unavailable(what) {
  return function () {
    throw new Error(`hypernova/server's ${what} needs Node (files, vm, Express or cluster) and is not available in an ssrd bundle; see docs/hypernova.md`);
  };
}

hypernova.defaultConfig = {
  bodyParser: { limit: 1024 * 1000 },
  devMode: false,
  endpoint: "/batch",
  files: [],
  logger: {},
  plugins: [],
  port: 8080,
  host: "0.0.0.0",
  processJobsConcurrently: true,
  listenArgs: null,
};
hypernova.logger = logger;
hypernova.raceTo = function raceTo(promise, ms, message) {
  let timer;
  const late = {};
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(late), ms);
  });
  return Promise.race([promise, timeout]).then(
    (value) => {
      clearTimeout(timer);
      if (value === late) logger.info(message, { timeout: ms });
      return value;
    },
    (error) => {
      clearTimeout(timer);
      throw error;
    },
  );
};
for (const name of ["Module", "createApplication", "createGetComponent", "createVM", "getFiles", "loadModules", "worker"]) {
  hypernova[name] = unavailable(name);
}

module.exports = hypernova;
module.exports.default = hypernova;
