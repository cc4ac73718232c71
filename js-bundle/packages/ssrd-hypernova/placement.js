// Writes Hypernova's placement markup (docs/protocol.md, "Placement
// markup"): the server HTML in a keyed div, the props as JSON in a script
// element beside it. Same bytes as hypernova-react's output apart from the
// random id and ssrd's JSON escapes for "<", U+2028 and U+2029, which keep
// any props value from ending the script element early.

export function placementKey(name) {
  return name.replace(/\W/g, "");
}

// A random (version 4) UUID; ids only need to be unique within a page.
export function placementId() {
  const digits = [];
  for (let i = 0; i < 32; i++) digits.push(Math.floor(Math.random() * 16));
  digits[12] = 4;
  digits[16] = 8 + (digits[16] % 4);
  const hex = digits.map((d) => d.toString(16)).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// The props as the script element's text. `&` and `>` become entities
// (Hypernova's browser side turns them back); the rest are JSON escapes that
// JSON.parse undoes by itself.
export function encodeProps(props) {
  return `<!--${JSON.stringify(props)
    .replace(/&/g, "&amp;")
    .replace(/>/g, "&gt;")
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029")}-->`;
}

export function placement(name, html, props) {
  const key = placementKey(name);
  const id = placementId();
  const attrs = `data-hypernova-key="${key}" data-hypernova-id="${id}"`;
  return `<div ${attrs}>${html}</div>\n<script type="application/json" ${attrs}>${encodeProps(props)}</script>`;
}
