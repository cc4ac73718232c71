// What every browser test needs: start a real process and wait (bounded)
// for its ready line, find free loopback ports, fetch a page with a
// deadline, launch Debian's Chromium headless, and stop every process
// started when the test file is done.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { createServer } from "node:net";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

/** Every process `start` spawned, for `stopAll`. */
const children = [];

/** Spawns a process and waits (bounded) for its first stdout line, as JSON. */
export function start(cmd, args, env = {}) {
  const proc = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(proc);
  const stderr = [];
  proc.stderr.on("data", (d) => stderr.push(d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} not ready in 30 s: ${stderr.join("")}`)), 30_000);
    const lines = createInterface({ input: proc.stdout });
    lines.once("line", (line) => {
      clearTimeout(timer);
      resolve({ proc, ready: JSON.parse(line), stderr });
    });
    proc.once("exit", (code) => reject(new Error(`${cmd} exited ${code}: ${stderr.join("")}`)));
  });
}

/** A loopback port nothing listens on (right now). */
export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** `n` consecutive loopback ports nothing listens on (right now), as a tier wants them. */
export async function freePorts(n) {
  const canBind = (port) =>
    new Promise((resolve) => {
      const s = createServer();
      s.once("error", () => resolve(false));
      s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 40000);
    let ok = true;
    for (let i = 0; i < n && ok; i++) ok = await canBind(base + i);
    if (ok) return base;
  }
  throw new Error(`no ${n} consecutive free ports`);
}

/** GETs (or `init`s) a URL within 20 s: status, text and headers. */
export async function fetchText(url, init = {}) {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) });
  return { status: r.status, text: await r.text(), headers: r.headers };
}

/**
 * Debian's Chromium, headless, with the flags this closed network needs
 * (no background connections, which it would refuse by the dozen).
 */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 30_000,
  });
}

/** Kills every process `start` spawned. */
export function stopAll() {
  for (const c of children) c.kill("SIGKILL");
}
