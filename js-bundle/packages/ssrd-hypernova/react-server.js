// hypernova-react's API for an ssrd server bundle (esbuild.mjs maps
// `hypernova-react` here in the server build). The app's components stay as
// they are: `module.exports = renderReact("Name.js", Component)`.
//
// renderReact gives Hypernova's getComponent the render function it expects:
// props in, placement markup out (the server HTML wrapped with the props,
// see placement.js), which the Hypernova client inserts into the page as it
// is. renderReactStatic renders static markup with no wrapper and no props.
import { createElement } from "react";
import { renderToStaticMarkup, renderToString } from "react-dom/server";
import { placement } from "./placement.js";

export function renderReact(name, component) {
  return (props) => placement(name, renderToString(createElement(component, props)), props);
}

export function renderReactStatic(_name, component) {
  return (props) => renderToStaticMarkup(createElement(component, props));
}
