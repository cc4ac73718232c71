// The reference: Airbnb's Hypernova 2.5.0 serving the same components (a
// Node build of the same js-bundle sources: js-bundle/dist/node.cjs), with
// the same number of worker processes (Node cluster), on the machine's Node.
// Started by bench/bench.py; PORT and WORKERS come from the environment.
const path = require("path");
const hypernova = require("hypernova/server");
const { getComponent } = require(path.resolve(__dirname, "../../js-bundle/dist/node.cjs"));

hypernova({
  devMode: false,
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
