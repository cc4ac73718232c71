// The reference: Airbnb's Hypernova 2.5.0 serving the same components (a
// Node build of the same js-bundle sources: js-bundle/dist/node.cjs), with
// the same number of worker processes (Node cluster), on the machine's Node.
// Started by bench/bench.py; PORT and WORKERS come from the environment.
//
// SINGLE_PROCESS=1 (the A18 setup, bench/a18.py): no cluster at all. The
// process that listens on PORT is the one that renders, one request at a
// time behind haproxy's `maxconn 1`, like one of ssrd's workers. Hypernova
// 2.5.0 has exactly one path without a cluster, its `devMode` (lib/server.js:
// devMode runs the worker in this process; otherwise the master forks
// getCPUs() children, even for 1). In 2.5.0 devMode changes nothing else but
// SIGTERM/SIGINT closing the server gracefully (lib/worker.js).
const path = require("path");
const hypernova = require("hypernova/server");
const { getComponent } = require(path.resolve(__dirname, "../../js-bundle/dist/node.cjs"));

hypernova({
  devMode: process.env.SINGLE_PROCESS === "1",
  getComponent,
  host: "127.0.0.1",
  port: Number(process.env.PORT || 3030),
  endpoint: "/batch",
  getCPUs: () => Number(process.env.WORKERS || 2),
  // The same 5 MB body limit as ssrd's default.
  bodyParser: { limit: "5mb" },
  // Hypernova logs every request at "info"; the benchmark measures rendering.
  logger: { level: "error" },
});
