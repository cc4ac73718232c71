// A real Rails app (tests/rails-app: Rails 6.1 on Puma, Debian's packages)
// in front of a real tier (`ssrd up --workers 2`, the example bundle
// js-bundle/dist/server.js), wired the way hypernova-ruby's README says:
// Hypernova.configure with the gem's default timeouts, around_action
// :hypernova_render_support, render_react_component four times in one view.
// The gem is the unchanged hypernova-ruby 2.0.0 (its lib/ named by
// HYPERNOVA_RUBY_LIB). Debian's Chromium runs js-bundle/dist/client.js.
//
// Proves: (a) the page carries each component's server HTML inside
// Hypernova's placement markup, and the gem's empty fallback for the job
// the tier cannot render; (b) the page hydrates without a console warning
// or error, keeps the server's DOM nodes, and handles clicks; (c) the
// failed job renders in the browser; (e) under `ab -n 400 -c 4` every page
// is a 200; (d) with the tier stopped the page is still a 200 and every
// component renders in the browser, with the same DOM as the server's.
//
// Needs ruby with Debian's ruby-railties, puma and ruby-faraday, ab, and
// target/release/ssrd. Run from .ci/run, or:
//   cd tests/browser && npm ci && HYPERNOVA_RUBY_LIB=… node --test rails.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { fetchText, freePorts, launchChromium, start, stopAll } from "./harness.mjs";

// Without the gem these tests are skipped, unless CI requires them.
const GEM = process.env.HYPERNOVA_RUBY_LIB;
const SKIP = GEM && existsSync(path.join(GEM, "hypernova.rb")) ? false : "set HYPERNOVA_RUBY_LIB to the hypernova gem's lib/";
if (SKIP && process.env.SSRD_REQUIRE_PEERS) throw new Error("SSRD_REQUIRE_PEERS is set but HYPERNOVA_RUBY_LIB names no hypernova gem");

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const SSRD = path.join(ROOT, "target/release/ssrd");
const BUNDLE = path.join(ROOT, "js-bundle/dist/server.js");
const APP = path.join(ROOT, "tests/rails-app");
const ARTIFACTS = process.env.SSRD_ARTIFACTS || path.join(ROOT, "target/browser-artifacts");

// What the view renders (tests/rails-app/app/views/pages/show.html.erb):
// section id → the placement key, the props, and the server HTML the tier
// answers for it. "missing" is the job named "Hello-World", which the
// bundle does not have: the gem's fallback, keyed "HelloWorld".
const NAV_HTML =
  '<nav class="nav-bar"><a class="logo" href="/">stay</a><ul class="nav-links"><li><a href="/trips">Trips</a></li>' +
  '<li><a href="/inbox">Inbox</a></li></ul><a class="log-in" href="/login">Log in</a></nav>';
const HELLO_HTML =
  '<div class="hello-world"><h1>Hello<!-- -->, <!-- -->Rails<!-- -->!</h1><button type="button" class="hello-button">' +
  "Clicked <!-- -->0<!-- --> <!-- -->times</button></div>";
const SECTIONS = {
  nav: { key: "NavBar", props: { links: [{ href: "/trips", label: "Trips" }, { href: "/inbox", label: "Inbox" }] }, html: NAV_HTML },
  hello: { key: "HelloWorld", props: { name: "Rails" }, html: HELLO_HTML },
  search: {
    key: "SearchBar",
    props: {
      query: "Kyoto",
      checkIn: "2027-03-28",
      checkOut: "2027-04-04",
      guests: 3,
      filters: [
        { id: "wifi", label: "Wifi", active: true },
        { id: "pool", label: "Pool & spa", active: false },
      ],
    },
    html: /^<form class="search-bar" role="search" action="\/s" method="get">.*value="Kyoto".*Pool &amp; spa<\/label><\/fieldset><button type="submit">Search<\/button><\/form>$/s,
  },
  missing: { key: "HelloWorld", props: { name: "the browser" }, html: "" },
};

let browser;
let runDir;
let tier; // { proc, port, metrics }
let app; // { url, log() }
let ssrShapes; // each section's DOM after hydration, for the tier-down test

const execFileP = promisify(execFile);


/** The JSON of a placement's script element, as ssrd-hypernova's find-placements.js reads it. */
function decodeProps(comment) {
  return JSON.parse(comment.replace(/&gt;/g, ">").replace(/&amp;/g, "&"));
}

/** Every Hypernova placement (div and props script, same key and id) in `html`. */
function placements(html) {
  const re =
    /<div data-hypernova-key="(\w+)" data-hypernova-id="([0-9a-f-]{36})">([\s\S]*?)<\/div>\s*<script type="application\/json" data-hypernova-key="\1" data-hypernova-id="\2"><!--([\s\S]*?)--><\/script>/g;
  return [...html.matchAll(re)].map(([, key, id, inner, json]) => ({ key, id, inner, props: decodeProps(json) }));
}

/** The content of <section id=…> / <header id=…> in the page. */
function section(html, id) {
  const m = html.match(new RegExp(`<(section|header) id="${id}">([\\s\\S]*?)</\\1>`));
  assert.ok(m, `the page has #${id}`);
  return m[2];
}

/** Opens the page, collecting console messages; waits for client.js to mount. */
async function open(url) {
  const context = await browser.newContext();
  // Before client.js runs, note the server's DOM nodes: hydration must keep
  // them (a re-render would replace them).
  await context.route("**/client.js", async (route) => {
    const response = await route.fetch();
    const snapshot =
      "window.beforeClient = { hello: document.querySelector('#hello .hello-button'), " +
      "nav: document.querySelector('#nav nav'), search: document.querySelector('#search form') };\n";
    await route.fulfill({ response, body: snapshot + (await response.text()) });
  });
  const tab = await context.newPage();
  const messages = [];
  tab.on("console", (m) => messages.push({ type: m.type(), text: m.text() }));
  tab.on("pageerror", (e) => messages.push({ type: "pageerror", text: String(e) }));
  await tab.goto(url, { timeout: 20_000 });
  await tab.waitForFunction(() => Array.isArray(window.ssrdMounted), null, { timeout: 10_000 });
  return { tab, context, messages };
}

const problems = (messages) => messages.filter((m) => ["error", "warning", "pageerror"].includes(m.type));

/** Each section's placement DOM as a tree (attributes sorted, comments dropped). */
function shapes(tab) {
  return tab.evaluate((ids) => {
    function shape(node) {
      if (node.nodeType === Node.TEXT_NODE) return node.data;
      if (node.nodeType !== Node.ELEMENT_NODE) return null;
      const kids = [];
      for (const child of node.childNodes) {
        const s = shape(child);
        if (s === null) continue;
        if (typeof s === "string" && typeof kids.at(-1) === "string") kids[kids.length - 1] += s;
        else kids.push(s);
      }
      const attrs = [...node.attributes].map((a) => `${a.name}=${a.value}`).sort();
      return [node.localName, attrs, kids];
    }
    return Object.fromEntries(ids.map((id) => [id, shape(document.querySelector(`#${id} div[data-hypernova-key]`))[2]]));
  }, Object.keys(SECTIONS));
}

function metric(text, name) {
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line ? Number(line.split(" ")[1]) : 0;
}

before(async () => {
  if (SKIP) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  runDir = mkdtempSync(path.join(os.tmpdir(), "ssrd-rails-test-"));
  const base = await freePorts(6);
  // The tier, as .ci/up starts it, on free ports, without a drain on stop.
  const t = await start(SSRD, [
    "up",
    "--workers", "2",
    "--bundle", BUNDLE,
    "--port", String(base),
    "--haproxy-port", String(base + 1),
    "--stats-port", String(base + 2),
    "--metrics-port", String(base + 3),
    "--worker-base-port", String(base + 4),
    "--run-dir", path.join(runDir, "run"),
    "--drain-seconds", "0",
  ]);
  assert.equal(t.ready.ready, true, JSON.stringify(t.ready));
  tier = { proc: t.proc, port: base, metrics: `http://127.0.0.1:${base + 3}/metrics` };

  const a = await start("ruby", [path.join(APP, "serve.rb")], {
    SSRD_PORT: String(tier.port),
    PORT: "0",
    HYPERNOVA_RUBY_LIB: GEM,
  });
  app = { url: (q = "") => `http://127.0.0.1:${a.ready.port}/${q}`, log: () => a.stderr.join("") };
  // One page first: Rails and the tier's code paths warm, so the gem's
  // 600 ms timeout measures rendering, not a cold start.
  assert.equal((await fetchText(app.url())).status, 200, app.log());

  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (tier && tier.proc.exitCode === null && tier.proc.signalCode === null) {
    tier.proc.kill("SIGTERM");
    await Promise.race([once(tier.proc, "exit"), new Promise((r) => setTimeout(r, 10_000))]);
  }
  stopAll();
  if (runDir) rmSync(runDir, { recursive: true, force: true });
});

test("(a) the page carries each component's server HTML inside its placement; the unknown job gets the gem's fallback", { skip: SKIP }, async () => {
  const page = await fetchText(app.url());
  assert.equal(page.status, 200);
  assert.doesNotMatch(page.text, /__hypernova_render_token/, "every render token replaced");
  for (const [id, want] of Object.entries(SECTIONS)) {
    const got = placements(section(page.text, id));
    assert.equal(got.length, 1, `#${id}: one Hypernova placement (div + props script); the section holds:\n${section(page.text, id)}`);
    const [p] = got;
    assert.equal(p.key, want.key, `#${id}: placement key`);
    assert.deepEqual(p.props, want.props, `#${id}: props for the browser`);
    if (want.html instanceof RegExp) assert.match(p.inner, want.html, `#${id}: server HTML inside the placement`);
    else assert.equal(p.inner, want.html, `#${id}: ${want.html ? "server HTML inside the placement" : "empty: the gem's fallback"}`);
  }
  // The failed job reached the app's on_error (config/initializers/hypernova_errors.rb).
  assert.match(app.log(), /hypernova fallback: ReferenceError: Component "Hello-World" not registered \(components: Hello-World\)/);
});

test("(b) in Chromium the page hydrates without a warning or error, keeps the server's nodes and handles clicks", { skip: SKIP }, async () => {
  const { tab, context, messages } = await open(app.url());
  const mounted = await tab.evaluate(() => window.ssrdMounted);
  assert.deepEqual(
    mounted.map((m) => `${m.name}:${m.mode}`).sort(),
    ["HelloWorld:hydrate", "HelloWorld:render", "NavBar:hydrate", "SearchBar:hydrate"],
    "server HTML hydrated, the fallback rendered",
  );
  // hydrateRoot is asynchronous: wait until React owns each server node.
  await tab.waitForFunction(() =>
    ["#hello .hello-button", "#nav nav", "#search form"].every((sel) => {
      const node = document.querySelector(sel);
      return node && Object.keys(node).some((k) => k.startsWith("__reactFiber$"));
    }),
  );
  const kept = await tab.evaluate(() =>
    Object.entries({ hello: "#hello .hello-button", nav: "#nav nav", search: "#search form" }).map(([k, sel]) => [
      k,
      window.beforeClient[k] !== null && window.beforeClient[k] === document.querySelector(sel),
    ]),
  );
  assert.deepEqual(kept, [["hello", true], ["nav", true], ["search", true]], "the server's DOM nodes kept (hydrated, not re-rendered)");
  ssrShapes = await shapes(tab);
  await tab.click("#hello .hello-button");
  await tab.waitForFunction(() => document.querySelector("#hello .hello-button").textContent === "Clicked 1 time");
  await tab.click("#hello .hello-button");
  await tab.waitForFunction(() => document.querySelector("#hello .hello-button").textContent === "Clicked 2 times");
  await tab.screenshot({ path: path.join(ARTIFACTS, "rails-ssr-hydrated.png") });
  assert.deepEqual(problems(messages), [], "no hydration warnings or errors in the console");
  await context.close();
});

test("(c) the job the tier could not render renders in the browser", { skip: SKIP }, async () => {
  const { tab, context, messages } = await open(app.url());
  await tab.waitForSelector("#missing .hello-button");
  assert.equal(await tab.textContent("#missing h1"), "Hello, the browser!");
  await tab.click("#missing .hello-button");
  await tab.waitForFunction(() => document.querySelector("#missing .hello-button").textContent === "Clicked 1 time");
  assert.equal(await tab.textContent("#hello .hello-button"), "Clicked 0 times", "the other HelloWorld is its own root");
  assert.deepEqual(problems(messages), []);
  await context.close();
});

test("(e) under ab -n 400 -c 4 every page is a 200", { skip: SKIP }, async () => {
  const jobs = async () => {
    const text = (await fetchText(tier.metrics)).text;
    return { ok: metric(text, 'ssrd_jobs_total{outcome="ok"}'), notFound: metric(text, 'ssrd_jobs_total{outcome="not_found"}') };
  };
  const fallbacksBefore = (app.log().match(/hypernova fallback: (?!ReferenceError)/g) || []).length;
  const before = await jobs();
  // -l: pages differ in length when a component falls back; that is
  // counted below, not as an ab failure.
  const { stdout } = await execFileP("ab", ["-l", "-n", "400", "-c", "4", app.url()], { timeout: 180_000, maxBuffer: 1 << 20 });
  const field = (name) => Number((stdout.match(new RegExp(`^${name}:\\s+(\\d+)`, "m")) || [])[1]);
  assert.equal(field("Complete requests"), 400, stdout);
  assert.equal(field("Failed requests"), 0, stdout);
  assert.doesNotMatch(stdout, /Non-2xx responses/, stdout);
  // Every page reached the tier and was rendered there: 3 components and
  // the unknown one each time, and no page fell back as a whole.
  const afterRun = await jobs();
  assert.equal(afterRun.ok - before.ok, 1200, "server-rendered jobs");
  assert.equal(afterRun.notFound - before.notFound, 400, "the unknown job, each time");
  const fallbacks = (app.log().match(/hypernova fallback: (?!ReferenceError)/g) || []).length - fallbacksBefore;
  assert.equal(fallbacks, 0, "no page fell back as a whole (timeouts, errors)");
});

test("(d) with the tier stopped the page is still a 200 and every component renders in the browser", { skip: SKIP }, async () => {
  tier.proc.kill("SIGTERM");
  const [code] = await Promise.race([
    once(tier.proc, "exit"),
    new Promise((_, reject) => setTimeout(() => reject(new Error("ssrd did not exit within 15 s of SIGTERM")), 15_000)),
  ]);
  assert.equal(code, 0, "ssrd stops cleanly on SIGTERM");
  await assert.rejects(fetchText(`http://127.0.0.1:${tier.port}/ping`), "nothing listens where the tier was");

  const started = Date.now();
  const page = await fetchText(app.url());
  assert.equal(page.status, 200);
  assert.ok(Date.now() - started < 2000, "the gem gives up at once when nothing listens");
  for (const [id, want] of Object.entries(SECTIONS)) {
    const [p] = placements(section(page.text, id));
    assert.ok(p, `#${id}: the gem's fallback markup`);
    assert.equal(p.key, want.key);
    assert.equal(p.inner, "", `#${id}: empty: rendered by the browser`);
    assert.deepEqual(p.props, want.props);
  }
  assert.match(app.log(), /hypernova fallback: Faraday::ConnectionFailed: .* \(components: NavBar, HelloWorld, SearchBar, Hello-World\)/);

  const { tab, context, messages } = await open(app.url());
  const mounted = await tab.evaluate(() => window.ssrdMounted);
  assert.deepEqual(
    mounted.map((m) => `${m.name}:${m.mode}`).sort(),
    ["HelloWorld:render", "HelloWorld:render", "NavBar:render", "SearchBar:render"],
  );
  await tab.waitForSelector("#hello .hello-button");
  await tab.waitForSelector("#missing .hello-button");
  await tab.waitForSelector("#nav nav.nav-bar");
  await tab.waitForSelector("#search form.search-bar");
  assert.equal(await tab.textContent("#hello h1"), "Hello, Rails!");
  if (ssrShapes) assert.deepEqual(await shapes(tab), ssrShapes, "the same DOM as the server-rendered page");
  await tab.click("#hello .hello-button");
  await tab.waitForFunction(() => document.querySelector("#hello .hello-button").textContent === "Clicked 1 time");
  await tab.screenshot({ path: path.join(ARTIFACTS, "rails-tier-down.png") });
  assert.deepEqual(problems(messages), []);
  await context.close();
});
