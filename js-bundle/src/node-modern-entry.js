// Entry of dist/node-modern.cjs: the modern examples (src/modern) built for
// Node the way a Node SSR server would build them (react-dom's Node
// builds, styled-components' server build), for scripts/render-node.mjs
// and tests/node_parity.rs to compare with what ssrd renders.
export { modernRenderers } from "./modern/index.js";
