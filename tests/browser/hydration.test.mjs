// Browser tests of the client side: a real ssrd worker, the monolith-style
// Ruby caller (examples/caller) in front of it, and Debian's Chromium driven
// by playwright-core. Proves: server HTML arrives rendered and hydrates
// without warnings; when ssrd is down or too slow the caller's fallback
// markup makes the browser render the same DOM; props cannot inject script.
// Screenshots of each path go to target/browser-artifacts/ (not committed).
//
// Run from .ci/run (which installs chromium and ruby), or:
//   cd tests/browser && npm ci && npm test
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { fetchText, freePort, launchChromium, start, stopAll } from "./harness.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const SSRD = path.join(ROOT, "target/release/ssrd");
const FAULTS = path.join(ROOT, "js-bundle/dist/faults.js");
const CALLER = path.join(ROOT, "examples/caller/caller.rb");
const ARTIFACTS = process.env.SSRD_ARTIFACTS || path.join(ROOT, "target/browser-artifacts");
const hypernova = createRequire(import.meta.url)("hypernova");

let browser;
let worker; // { port }
let caller; // caller in front of the live worker
let deadCaller; // caller in front of a port where nothing listens

async function startCaller(ssrdPort) {
  const { ready } = await start("ruby", [CALLER], {
    SSRD_URL: `http://127.0.0.1:${ssrdPort}/batch`,
    PORT: "0",
    SSRD_TIMEOUT_MS: "600",
  });
  return { port: ready.port, url: (q = "") => `http://127.0.0.1:${ready.port}/${q}` };
}

/** Opens a page, collecting console messages; waits for client.js to mount. */
async function open(url, { javaScript = true } = {}) {
  const context = await browser.newContext({ javaScriptEnabled: javaScript });
  const page = await context.newPage();
  const messages = [];
  page.on("console", (m) => messages.push({ type: m.type(), text: m.text() }));
  page.on("pageerror", (e) => messages.push({ type: "pageerror", text: String(e) }));
  await page.goto(url, { timeout: 20_000 });
  if (javaScript) await page.waitForFunction(() => Array.isArray(window.ssrdMounted), null, { timeout: 10_000 });
  return { page, context, messages };
}

function helloHtml(html) {
  // The HelloWorld placement's inner DOM, without React's text separators
  // (<!-- -->), which only server HTML has.
  return html.replace(/<!-- -->/g, "");
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const w = await start(SSRD, ["worker", "--bundle", FAULTS, "--port", "0", "--render-timeout-ms", "1000"]);
  worker = { port: w.ready.port };
  caller = await startCaller(worker.port);
  deadCaller = await startCaller(await freePort());
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  stopAll();
});

test("SSR path: HTML arrives rendered, hydrates without warnings, then handles clicks", async () => {
  const raw = await fetchText(caller.url("?name=Loft"));
  assert.equal(raw.status, 200);
  assert.match(raw.text, /data-ssr-rendered="2"/);
  assert.match(raw.text, /<div data-hypernova-key="HelloWorld" data-hypernova-id="[0-9a-f-]{36}"><div class="hello-world"><h1>Hello<!-- -->, <!-- -->Loft/);

  // Visible before any JS runs.
  const nojs = await open(caller.url("?name=Loft"), { javaScript: false });
  assert.equal(await nojs.page.textContent("h1"), "Hello, Loft!");
  await nojs.page.screenshot({ path: path.join(ARTIFACTS, "ssr-before-js.png") });
  await nojs.context.close();

  const { page, context, messages } = await open(caller.url("?name=Loft"));
  const mounted = await page.evaluate(() => window.ssrdMounted);
  assert.deepEqual(
    mounted.map((m) => m.mode),
    mounted.map(() => "hydrate"),
    JSON.stringify(mounted),
  );
  assert.ok(mounted.some((m) => m.name === "HelloWorld"));
  await page.click(".hello-button");
  await page.waitForFunction(() => document.querySelector(".hello-button").textContent === "Clicked 1 time");
  await page.screenshot({ path: path.join(ARTIFACTS, "ssr-hydrated.png") });
  const problems = messages.filter((m) => m.type === "error" || m.type === "warning" || m.type === "pageerror");
  assert.deepEqual(problems, [], "no hydration warnings or errors in the console");
  await context.close();
});

test("fallback path, ssrd down: the browser renders the same DOM", async () => {
  const ssr = await open(caller.url("?name=Loft"));
  const ssrDom = helloHtml(await ssr.page.innerHTML('div[data-hypernova-key="HelloWorld"]'));
  await ssr.context.close();

  const started = Date.now();
  const raw = await fetchText(deadCaller.url("?name=Loft"));
  assert.ok(Date.now() - started < 1500, "the caller falls back within its timeout");
  assert.match(raw.text, /data-ssr-rendered="0"/);
  assert.match(raw.text, /<div data-hypernova-key="HelloWorld" data-hypernova-id="[0-9a-f-]{36}"><\/div>/);

  const { page, context, messages } = await open(deadCaller.url("?name=Loft"));
  const mounted = await page.evaluate(() => window.ssrdMounted);
  assert.ok(mounted.every((m) => m.mode === "render"), JSON.stringify(mounted));
  await page.waitForSelector(".hello-button");
  const clientDom = helloHtml(await page.innerHTML('div[data-hypernova-key="HelloWorld"]'));
  assert.equal(clientDom, ssrDom, "same DOM as the server-rendered path");
  await page.click(".hello-button");
  await page.waitForFunction(() => document.querySelector(".hello-button").textContent === "Clicked 1 time");
  await page.screenshot({ path: path.join(ARTIFACTS, "fallback-ssrd-down.png") });
  assert.deepEqual(messages.filter((m) => m.type === "pageerror"), []);
  await context.close();
});

test("fallback path, a Runaway render: the caller gives up at 600 ms and the browser renders", async () => {
  const started = Date.now();
  const raw = await fetchText(caller.url("?name=Slowpoke&with=Runaway"));
  const took = Date.now() - started;
  assert.match(raw.text, /data-ssr-failure="yes"/);
  assert.match(raw.text, /data-ssr-rendered="0"/);
  assert.ok(took >= 550 && took < 1500, `fell back after ${took} ms`);

  const { page, context } = await open(caller.url("?name=Slowpoke&with=Runaway"));
  await page.waitForSelector(".hello-button");
  assert.equal(await page.textContent("h1"), "Hello, Slowpoke!");
  const mounted = await page.evaluate(() => window.ssrdMounted);
  assert.ok(mounted.some((m) => m.name === "HelloWorld" && m.mode === "render"), JSON.stringify(mounted));
  await page.screenshot({ path: path.join(ARTIFACTS, "fallback-runaway.png") });
  await context.close();
  // Let the worker finish the runaway job before the next test uses it.
  await new Promise((r) => setTimeout(r, 1200));
});

test("props cannot break out of the script element, on either path", async () => {
  const payloads = [
    "</script><script>window.__pwned=1</script>",
    "</script ><script>window.__pwned=2</script>",
    "\u2028<!--</script>--><script>window.__pwned=3</script>",
  ];
  for (const [label, target] of [["ssr", caller], ["fallback", deadCaller]]) {
    for (const [i, payload] of payloads.entries()) {
      const { page, context, messages } = await open(target.url(`?name=${encodeURIComponent(payload)}`));
      await page.waitForSelector(".hello-button");
      assert.equal(await page.evaluate(() => window.__pwned), undefined, `${label} ${i}: script ran`);
      assert.equal(await page.textContent("h1"), `Hello, ${payload}!`, `${label} ${i}: rendered as text`);
      if (i === 0) await page.screenshot({ path: path.join(ARTIFACTS, `xss-${label}.png`) });
      assert.deepEqual(messages.filter((m) => m.type === "pageerror"), []);
      await context.close();
    }
  }
});

test("placement markup matches Hypernova's serialize byte for byte, apart from the id", async () => {
  const id = /data-hypernova-id="[0-9a-f-]{36}"/g;
  const norm = (s) => s.replace(id, 'data-hypernova-id="ID"');
  const data = { name: "Loft & <friends>" };

  // The worker's own markup (POST /render/{name}?markup=1).
  const r = await fetchText(`http://127.0.0.1:${worker.port}/render/HelloWorld?markup=1`, {
    method: "POST",
    body: JSON.stringify(data),
  });
  assert.equal(r.status, 200);
  const html = r.text.match(/^<div[^>]*>(.*)<\/div>\n/s)[1];
  const theirs = norm(hypernova.serialize("HelloWorld", html, data));
  // ssrd writes "<" inside the JSON as \u003c, Hypernova raw: the only difference.
  assert.equal(norm(r.text), theirs.replace("<friends&gt;", "\\u003cfriends&gt;"));

  // A failed render still answers markup: the fallback, with the reason.
  const fallback = await fetchText(`http://127.0.0.1:${worker.port}/render/Throws?markup=1`, {
    method: "POST",
    body: "{}",
  });
  assert.equal(fallback.headers.get("x-ssrd-fallback"), "Error");
  assert.equal(norm(fallback.text), norm(hypernova.serialize("Throws", "", {})));

  // The Ruby caller's markup, from its page.
  const page = (await fetchText(caller.url("?name=Loft&nav=0"))).text;
  const placement = page.match(/<div data-hypernova-key="HelloWorld".*?<\/script>/s)[0];
  const callerHtml = placement.match(/^<div[^>]*>(.*)<\/div>\n/s)[1];
  assert.equal(norm(placement), norm(hypernova.serialize("HelloWorld", callerHtml, { name: "Loft" })));
});
