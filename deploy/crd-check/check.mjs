// Checks Prometheus Operator resources (ServiceMonitor, PodMonitor, ...) in
// the YAML files named on the command line, two ways:
//
// 1. the published model's validate() (@kubernetes-models/prometheus-operator,
//    generated from the operator's CRDs): types, enums, patterns, required
//    fields;
// 2. the TypeScript compiler against the same package's types: every
//    resource becomes a typed object literal, so a field the CRD does not
//    have (a misspelling) is an error. The CRD schemas themselves allow
//    unknown fields, which is why (1) alone would accept `intervall: 15s`.
//
// Documents of any other API group are skipped (kubernetes-validate checks
// those). Exits 1 on any problem, printing each; prints one line per checked
// resource otherwise.
import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import ts from "typescript";

const here = dirname(fileURLToPath(import.meta.url));
const GROUP = "monitoring.coreos.com/";
const PKG = "@kubernetes-models/prometheus-operator";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node check.mjs FILE.yaml...");
  process.exit(2);
}

const problems = [];
const resources = []; // {file, index, kind, version, doc}
for (const file of files) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  docs.forEach((d, index) => {
    if (d.errors.length) {
      problems.push(`${file}: YAML: ${d.errors.map((e) => e.message).join("; ")}`);
      return;
    }
    const doc = d.toJS();
    if (!doc || typeof doc.apiVersion !== "string" || !doc.apiVersion.startsWith(GROUP)) return;
    const version = doc.apiVersion.slice(GROUP.length);
    resources.push({ file, index, kind: doc.kind, version, doc });
  });
}

// 1. validate() of the published model.
for (const r of resources) {
  let Model;
  try {
    ({ [r.kind]: Model } = await import(`${PKG}/monitoring.coreos.com/${r.version}/${r.kind}`));
  } catch {
    problems.push(`${r.file}: no model for ${r.doc.apiVersion} ${r.kind}`);
    continue;
  }
  try {
    new Model(r.doc).validate();
  } catch (e) {
    problems.push(`${r.file}: ${r.kind} ${r.doc.metadata?.name}: ${String(e.message).split("\n")[0]}`);
  }
}

// 2. The TypeScript types: one typed literal per resource.
const genDir = join(here, "node_modules", ".cache", "ssrd-crd-check");
mkdirSync(genDir, { recursive: true });
const genFile = join(genDir, "resources.ts");
const lines = [];
const origin = []; // generated line number -> resource
resources.forEach((r, i) => {
  const type = `I${r.kind}`;
  lines.push(`import type { ${type} as T${i} } from "${PKG}/monitoring.coreos.com/${r.version}/${r.kind}";`);
});
resources.forEach((r, i) => {
  const body = JSON.stringify(r.doc, null, 2).split("\n");
  body[0] = `export const r${i}: T${i} = ${body[0]}`;
  body[body.length - 1] += ";";
  for (const l of body) {
    origin[lines.length] = r;
    lines.push(l);
  }
});
writeFileSync(genFile, lines.join("\n") + "\n");
const program = ts.createProgram([genFile], {
  noEmit: true,
  strict: true,
  skipLibCheck: true,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  types: [],
});
for (const d of ts.getPreEmitDiagnostics(program)) {
  const message = ts.flattenDiagnosticMessageText(d.messageText, " ");
  if (d.file && d.file.fileName === genFile && d.start !== undefined) {
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const r = origin[line];
    const where = r ? `${r.file}: ${r.kind} ${r.doc.metadata?.name}` : relative(process.cwd(), genFile);
    problems.push(`${where}: ${message} (generated line ${line + 1}: ${lines[line].trim()})`);
  } else {
    problems.push(`typescript: ${message}`);
  }
}

if (problems.length) {
  for (const p of problems) console.error(`FAIL ${p}`);
  process.exit(1);
}
for (const r of resources) console.log(`ok ${r.file}: ${r.kind} ${r.doc.metadata?.name} (model + types)`);
