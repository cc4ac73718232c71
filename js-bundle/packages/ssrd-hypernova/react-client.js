// hypernova-react's API for the browser build of a Hypernova app, on React
// 18/19 (esbuild.mjs maps `hypernova-react` here in the client build).
// hypernova-react's own client calls ReactDOM.hydrate or ReactDOM.render,
// which React 19 no longer has.
//
// As with hypernova-react, requiring a component module mounts it: every
// placement of that name already on the page is hydrated with hydrateRoot
// where the server sent HTML, or rendered with createRoot where the caller
// fell back to an empty div. The component itself is returned.
import { createElement } from "react";
import { createRoot, hydrateRoot } from "react-dom/client";
import { findPlacements } from "./find-placements.js";

export function renderReact(name, component) {
  if (typeof document === "undefined") return component;
  for (const { node, props } of findPlacements(document, name)) {
    const element = createElement(component, props);
    if (node.firstChild) hydrateRoot(node, element);
    else createRoot(node).render(element);
  }
  return component;
}

// Static markup has nothing to bring to life in the browser.
export function renderReactStatic() {}
