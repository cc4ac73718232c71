// Injected into the ssrd server build (esbuild.mjs) for code that reads
// `process.env.X` at the top level, as Hypernova server files often do for
// their port. An ssrd worker has no process object and no environment:
// every variable reads as undefined (NODE_ENV is defined as "production"
// at build time).
export const process = { env: {} };
