// An unchanged Hypernova app in a real browser, served through ssrd
// (docs/hypernova.md): the Rails-side hypernova-ruby gem, unchanged (its
// lib/ named by HYPERNOVA_RUBY_LIB), builds the page from ssrd's renders
// of tests/hypernova-app, whose sources are bundled with
// ssrd-hypernova's esbuild recipe; Debian's Chromium runs the app's
// client bundle. Proves: the gem inserts ssrd's HTML as it is, it hydrates
// (React 19's hydrateRoot, the server's DOM nodes kept) with no console
// warning or error and then handles clicks; props cannot end the script
// element; and with nothing listening where ssrd should be, the gem's
// fallback markup makes the browser render the same DOM.
//
// Needs `npm ci` in tests/hypernova-app and Ruby with Faraday (Debian:
// ruby-faraday). Run from .ci/run, or: cd tests/browser && npm ci && npm test
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { fetchText, freePort, launchChromium, start, stopAll } from "./harness.mjs";

// Without the gem these tests are skipped, unless CI requires them.
const GEM = process.env.HYPERNOVA_RUBY_LIB;
const SKIP = GEM && existsSync(path.join(GEM, "hypernova.rb")) ? false : "set HYPERNOVA_RUBY_LIB to the hypernova gem's lib/";
if (SKIP && process.env.SSRD_REQUIRE_PEERS) throw new Error("SSRD_REQUIRE_PEERS is set but HYPERNOVA_RUBY_LIB names no hypernova gem");

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const APP = path.join(ROOT, "tests/hypernova-app");
const SSRD = path.join(ROOT, "target/release/ssrd");
const ARTIFACTS = process.env.SSRD_ARTIFACTS || path.join(ROOT, "target/browser-artifacts");
// The app's bundles, built for this run only (inside the app, see build.mjs).
const BUILD = path.join(APP, "dist", `browser-${process.pid}`);

let browser;
let worker; // { port }
let page; // the Rails-style page in front of ssrd
let deadPage; // the same page where nothing listens for the gem

async function startPage(hypernovaPort) {
  const { ready } = await start("ruby", [path.join(APP, "rails_page.rb")], {
    HYPERNOVA_PORT: String(hypernovaPort),
    CLIENT_JS: path.join(BUILD, "client.js"),
    PORT: "0",
  });
  return { url: (q = "") => `http://127.0.0.1:${ready.port}/${q}` };
}

/** Opens a page, collecting console messages; with JS, waits until the Counter's effect ran. */
async function open(url, { javaScript = true } = {}) {
  const context = await browser.newContext({ javaScriptEnabled: javaScript });
  const tab = await context.newPage();
  const messages = [];
  tab.on("console", (m) => messages.push({ type: m.type(), text: m.text() }));
  tab.on("pageerror", (e) => messages.push({ type: "pageerror", text: String(e) }));
  await tab.goto(url, { timeout: 20_000 });
  if (javaScript) await tab.waitForSelector('.counter[data-live="yes"]', { timeout: 10_000 });
  return { tab, context, messages };
}

const problems = (messages) => messages.filter((m) => ["error", "warning", "pageerror"].includes(m.type));

// Each placement's DOM, without React's text separators (<!-- -->), which
// only server HTML has.
async function placementsDom(tab) {
  return tab.evaluate(() =>
    Object.fromEntries(
      ["Greetingjs", "Counterjs", "Listingjs"].map((key) => [
        key,
        document.querySelector(`div[data-hypernova-key="${key}"]`).innerHTML.replace(/<!-- -->/g, ""),
      ]),
    ),
  );
}

before(async () => {
  if (SKIP) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  assert.ok(existsSync(path.join(APP, "node_modules/hypernova-react")), "run npm ci in tests/hypernova-app");
  execFileSync("node", ["build.mjs", path.relative(APP, BUILD)], { cwd: APP, stdio: "inherit" });
  const w = await start(SSRD, ["worker", "--bundle", path.join(BUILD, "ssrd-server.js"), "--port", "0"]);
  worker = { port: w.ready.port };
  // A first render compiles the app's code paths; warm them so the gem's
  // 600 ms timeout measures rendering, not a cold start on a busy machine.
  const warm = await fetchText(`http://127.0.0.1:${worker.port}/batch`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      0: { name: "Greeting.js", data: { name: "warm", places: [] } },
      1: { name: "Counter.js", data: { label: "warm", start: 0 } },
      2: { name: "Listing.js", data: { title: "warm", price: { amount: 1, currency: "EUR" }, superhost: false } },
      3: { name: "Footer.js", data: { year: 2026, company: "warm" } },
    }),
  });
  assert.equal(warm.status, 200, warm.text);
  page = await startPage(worker.port);
  deadPage = await startPage(await freePort());
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  stopAll();
  rmSync(BUILD, { recursive: true, force: true });
});

test("the gem embeds ssrd's render as it is; it hydrates without warnings, then handles clicks", { skip: SKIP }, async () => {
  const raw = await fetchText(page.url());
  assert.equal(raw.status, 200);
  // hypernova-react's placement markup, from ssrd, inserted by the gem.
  assert.match(
    raw.text,
    /<div data-hypernova-key="Counterjs" data-hypernova-id="([0-9a-f-]{36})"><div class="counter" data-live="no"><span class="label">Guests<\/span><button type="button">Clicked <!-- -->1<!-- --> times<\/button><\/div><\/div>\n<script type="application\/json" data-hypernova-key="Counterjs" data-hypernova-id="\1"><!--\{"label":"Guests","start":1\}--><\/script>/,
  );
  assert.match(raw.text, /<div data-hypernova-key="Greetingjs" data-hypernova-id="[0-9a-f-]{36}"><div class="greeting"><h1>Hello, <!-- -->Rails<!-- -->!<\/h1>/);
  assert.match(raw.text, /<div data-hypernova-key="Listingjs" data-hypernova-id="[0-9a-f-]{36}"><article class="listing">/);
  assert.match(raw.text, /<footer class="footer">© 2026 Acme<\/footer>/);

  // Visible before any JS runs.
  const nojs = await open(page.url(), { javaScript: false });
  assert.equal(await nojs.tab.textContent("h1"), "Hello, Rails!");
  assert.equal(await nojs.tab.textContent(".listing h2"), "Loft by the canal & park");
  await nojs.tab.screenshot({ path: path.join(ARTIFACTS, "hypernova-ssr-before-js.png") });
  await nojs.context.close();

  const { tab, context, messages } = await open(page.url());
  // Hydrated, not re-rendered: the button the server sent is still the one
  // on the page, and React handles its clicks.
  const kept = await tab.evaluate(() => {
    const now = { button: ".counter button", h1: ".greeting h1", price: ".listing .price" };
    return Object.entries(now).map(([k, sel]) => [k, window.beforeClient[k] !== null && window.beforeClient[k] === document.querySelector(sel)]);
  });
  assert.deepEqual(kept, [["button", true], ["h1", true], ["price", true]], "server DOM nodes kept");
  await tab.click(".counter button");
  await tab.waitForFunction(() => document.querySelector(".counter button").textContent === "Clicked 2 times");
  await tab.click(".counter button");
  await tab.waitForFunction(() => document.querySelector(".counter button").textContent === "Clicked 3 times");
  assert.equal(await tab.textContent("footer"), "© 2026 Acme");
  await tab.screenshot({ path: path.join(ARTIFACTS, "hypernova-ssr-hydrated.png") });
  assert.deepEqual(problems(messages), [], "no hydration warnings or errors in the console");
  await context.close();
});

test("props cannot end the script element: they render as text and hydrate", { skip: SKIP }, async () => {
  const payload = "</script ><script>window.__pwned=1</script>";
  const { tab, context, messages } = await open(page.url(`?name=${encodeURIComponent(payload)}`));
  assert.equal(await tab.evaluate(() => window.__pwned), undefined, "script from props ran");
  assert.equal(await tab.textContent("h1"), `Hello, ${payload}!`);
  await tab.click(".counter button");
  await tab.waitForFunction(() => document.querySelector(".counter button").textContent === "Clicked 2 times");
  assert.deepEqual(problems(messages), []);
  await context.close();
});

test("ssrd down: the gem falls back to its blank markup and the browser renders the same DOM", { skip: SKIP }, async () => {
  const ssr = await open(page.url());
  const ssrDom = await placementsDom(ssr.tab);
  await ssr.context.close();

  const started = Date.now();
  const raw = await fetchText(deadPage.url());
  assert.ok(Date.now() - started < 2000, "the gem gives up quickly when nothing listens");
  assert.match(raw.text, /<div data-hypernova-key="Counterjs" data-hypernova-id="[0-9a-f-]{36}"><\/div>/);
  assert.match(raw.text, /<div data-hypernova-key="Greetingjs" data-hypernova-id="[0-9a-f-]{36}"><\/div>/);
  assert.doesNotMatch(raw.text, /class="counter"/);

  const { tab, context, messages } = await open(deadPage.url());
  assert.equal(await tab.evaluate(() => window.beforeClient.button), null, "nothing server-rendered");
  assert.deepEqual(await placementsDom(tab), ssrDom, "the same DOM as the server-rendered path");
  await tab.click(".counter button");
  await tab.waitForFunction(() => document.querySelector(".counter button").textContent === "Clicked 2 times");
  // As with hypernova-react, static components (renderReactStatic) exist
  // only as server HTML: nothing renders them in the browser.
  assert.equal(await tab.locator("footer").count(), 0);
  await tab.screenshot({ path: path.join(ARTIFACTS, "hypernova-fallback-ssrd-down.png") });
  assert.deepEqual(problems(messages), []);
  await context.close();
});
