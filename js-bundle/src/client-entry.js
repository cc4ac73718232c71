// Entry of dist/client.js: finds Hypernova markup on the page and hydrates
// server-rendered HTML, or renders from scratch where the server's render
// failed and the caller embedded only the props (fallback markup).
import { createElement } from "react";
import { createRoot, hydrateRoot } from "react-dom/client";
import { components } from "./registry.js";
import { findPlacements } from "ssrd-hypernova/find-placements";

export function mountAll(doc = document) {
  const mounted = [];
  for (const [name, component] of Object.entries(components)) {
    for (const { node, props } of findPlacements(doc, name)) {
      const element = createElement(component, props);
      if (node.firstChild) {
        hydrateRoot(node, element);
        mounted.push({ name, mode: "hydrate" });
      } else {
        createRoot(node).render(element);
        mounted.push({ name, mode: "render" });
      }
    }
  }
  return mounted;
}

window.ssrdMounted = mountAll();
