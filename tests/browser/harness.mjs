// What both browser tests need to run real processes: start one and wait
// (bounded) for its ready line, find a free loopback port, and stop every
// process started when the test file is done.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { createServer } from "node:net";

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

/** Kills every process `start` spawned. */
export function stopAll() {
  for (const c of children) c.kill("SIGKILL");
}
