// Entry of dist/node.cjs: the same components for Node, in the shape the
// reference Hypernova server expects (bench/hypernova): getComponent(name)
// returns a function from props to HTML, or null for an unknown name.
// Built with React's Node server build, as a Hypernova user would run it.
import { createElement } from "react";
import { renderToString } from "react-dom/server";
import { components } from "./registry.js";

export function getComponent(name) {
  const component = components[name];
  return component ? (props) => renderToString(createElement(component, props)) : null;
}
