// Hypernova's placement markup (docs/protocol.md, "Placement markup"), read
// in the browser: every placement of a component on the page, with its
// props. placement.js is the writer; callers (examples/caller) and the
// worker (bundles that declare `markup: "placement"`, and `?markup=1`)
// write it too. This reader accepts both Hypernova's own escaping and
// ssrd's stricter one.

export function toKey(name) {
  return name.replace(/\W/g, "");
}

function decode(text) {
  // Strip the comment wrapper, then reverse the two entity replacements.
  // ssrd's \u003c, \u2028, \u2029 escapes are JSON escapes: JSON.parse undoes them.
  const inner = text.replace(/^<!--/, "").replace(/-->$/, "");
  return JSON.parse(inner.replace(/&gt;/g, ">").replace(/&amp;/g, "&"));
}

export function findPlacements(doc, name) {
  const key = toKey(name);
  const out = [];
  for (const node of doc.querySelectorAll(`div[data-hypernova-key="${key}"]`)) {
    const id = node.getAttribute("data-hypernova-id");
    const script = doc.querySelector(
      `script[type="application/json"][data-hypernova-key="${key}"][data-hypernova-id="${id}"]`,
    );
    if (!script) continue;
    out.push({ node, props: decode(script.textContent) });
  }
  return out;
}
