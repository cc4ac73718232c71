// Server side of the ssrd bundle contract (README, "The bundle contract").
// The worker knows nothing about React: it calls globalThis.ssrd.render(name,
// props, context) and takes back HTML. This file is the only place that maps
// that call onto React.
import { createElement } from "react";
import { renderToString } from "react-dom/server";

function notRegistered(name) {
  const error = new ReferenceError(`Component "${name}" not registered`);
  error.statusCode = 404;
  return error;
}

export function installServerRenderer(components, { warmup = [], extra = {}, markup } = {}) {
  const registry = Object.assign(Object.create(null), components);
  globalThis.ssrd = {
    contract: 1,
    // "placement": the bundle's client (client-entry.js) finds components
    // by Hypernova's placement markup, so /batch answers carry it in
    // `html`, and the unchanged Hypernova clients (which paste `html` as it
    // is) get pages that hydrate (README, "The bundle contract").
    markup,
    components: Object.keys(registry),
    warmup,
    render(name, props, _context) {
      const special = Object.hasOwn(extra, name) ? extra[name] : undefined;
      if (special) return special(props);
      const component = registry[name];
      if (typeof component !== "function") throw notRegistered(name);
      return renderToString(createElement(component, props));
    },
  };
}
