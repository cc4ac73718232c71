// Renders jobs with Node, for tests/node_parity.rs, so ssrd's output can
// be compared with what Node prints for the same source. By default the
// renderers are the modern examples as built for Node
// (dist/node-modern.cjs, React's Node builds); `--bundle FILE` loads a
// classic-script ssrd bundle instead (e.g. tests/fixtures/fetch-streams.js)
// and calls its globalThis.ssrd.render. Reads a JSON array of {name,
// props} on stdin and prints a JSON array of {html, meta} (meta {} when a
// render returns a bare string) or {error} for a render that threw.
import { createRequire } from "node:module";
import { resolve } from "node:path";

const require = createRequire(import.meta.url);
const bundleAt = process.argv.indexOf("--bundle");
let modernRenderers;
if (bundleAt >= 0) {
  require(resolve(process.argv[bundleAt + 1]));
  const api = globalThis.ssrd;
  modernRenderers = new Proxy({}, {
    has: () => true,
    getOwnPropertyDescriptor: () => ({ configurable: true, enumerable: true, value: true }),
    get: (_, name) => (props) => api.render(name, props, { metadata: {} }),
  });
} else {
  ({ modernRenderers } = require("../dist/node-modern.cjs"));
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

const jobs = JSON.parse(await readStdin());
const out = [];
for (const { name, props } of jobs) {
  const render = Object.hasOwn(modernRenderers, name) ? modernRenderers[name] : null;
  if (!render) {
    out.push({ error: `no such example: ${name}` });
    continue;
  }
  try {
    const result = await render(props ?? {});
    out.push(typeof result === "string" ? { html: result, meta: {} } : { html: result.html, meta: result.meta ?? {} });
  } catch (err) {
    out.push({ error: String(err?.stack ?? err) });
  }
}
process.stdout.write(JSON.stringify(out));
