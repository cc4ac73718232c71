#!/usr/bin/env python3
"""Checks every deploy artifact the way a cluster, systemd and ssrd itself
would read it, then proves each check rejects a misspelled field.

Run through deploy/check (which installs the checkers first). Checks:

- Kubernetes core kinds (Deployment, Service, ConfigMap, HPA, PDB) against
  the API schemas of the oldest and newest versions supported here, with
  kubernetes-validate --strict (unknown fields are errors) and any warning
  treated as a failure;
- Prometheus Operator kinds (ServiceMonitor, PodMonitor) with
  deploy/crd-check (the published models' validate() plus the TypeScript
  types, which reject unknown fields);
- every ssrd.toml (the ConfigMaps', the image's, the systemd example's)
  with `ssrd config --config`, which refuses unknown keys and bad values;
- the Prometheus scrape job and the prometheus-adapter query with promtool;
- the systemd unit with `systemd-analyze verify`, failing on any output;
- that the timings and sizes agree across files: grace periods and stop
  timeouts cover drain_seconds + shutdown_timeout_ms, CPU requests cover
  one core per worker, memory limits cover workers x recycle_rss_mb.

Prints one line per check and "N passed, N failed" last; exits 1 on any
failure.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SSRD = Path(os.environ.get("SSRD_BIN", ROOT / "target" / "release" / "ssrd"))
VALIDATE = os.environ.get("KUBERNETES_VALIDATE", "kubernetes-validate")
CRD_CHECK = DEPLOY / "crd-check" / "check.mjs"
UNIT = DEPLOY / "systemd" / "ssrd.service"
# Native sidecars (restartPolicy: Always on an init container) need 1.29.
K8S_VERSIONS = ["1.29.0", "1.37.0"]
CRD_GROUP = "monitoring.coreos.com/"

# ssrd's own defaults for the keys the consistency checks read.
DEFAULTS = {"drain_seconds": 0, "shutdown_timeout_ms": 30000, "recycle_rss_mb": 1024}
# What nginx, haproxy, the supervisor and a reload's check process need
# beside the workers (docs: deploy/README.md, "Sizing").
OVERHEAD_MIB = 512

results = []


def report(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""), flush=True)
    return ok


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return p.returncode, (p.stdout + p.stderr).strip()


def docs_of(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def is_crd(doc):
    return str(doc.get("apiVersion", "")).startswith(CRD_GROUP)


# -------------------------------------------------------------- checkers ---

def check_core(paths):
    """kubernetes-validate --strict; any line but INFO is a failure."""
    problems = []
    for version in K8S_VERSIONS:
        rc, out = run([VALIDATE, "--strict", "-k", version, *map(str, paths)])
        bad = [l for l in out.splitlines() if not l.startswith("INFO ")]
        if rc != 0 or bad:
            problems.append(f"k8s {version}: " + " | ".join(bad or [f"exit {rc}"]))
    return problems


def check_crds(paths):
    rc, out = run(["node", str(CRD_CHECK), *map(str, paths)])
    return [] if rc == 0 else [out]


def check_toml(text, where):
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(text)
    try:
        rc, out = run([str(SSRD), "config", "--config", f.name])
    finally:
        os.unlink(f.name)
    return [] if rc == 0 else [f"{where}: {out.splitlines()[0] if out else f'exit {rc}'}" +
                               (f" … {out.splitlines()[-1]}" if len(out.splitlines()) > 1 else "")]


def check_unit(path):
    """systemd-analyze verify of a copy whose ExecStart is the built binary
    (verify insists the binary exists); any output is a failure, since it
    only warns about unknown keys."""
    text = Path(path).read_text().replace("/usr/local/bin/ssrd", str(SSRD))
    with tempfile.TemporaryDirectory() as d:
        unit = Path(d) / "ssrd.service"
        unit.write_text(text)
        rc, out = run(["systemd-analyze", "verify", str(unit)])
    return [] if rc == 0 and not out else [out or f"exit {rc}"]


def quantity_mib(q):
    m = re.fullmatch(r"(\d+)(Mi|Gi)", str(q))
    if not m:
        raise ValueError(f"memory quantity {q!r}: write it in Mi or Gi")
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


def quantity_millicores(q):
    q = str(q)
    return int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)


def ssrd_options(text):
    return {**DEFAULTS, **tomllib.loads(text)}


def check_consistency(manifests):
    """Each Deployment whose ssrd container mounts a ConfigMap holding
    ssrd.toml: grace period, CPU and memory against that config."""
    configs = {}
    for path in manifests:
        for d in docs_of(path):
            if d.get("kind") == "ConfigMap" and "ssrd.toml" in (d.get("data") or {}):
                configs[d["metadata"]["name"]] = ssrd_options(d["data"]["ssrd.toml"])
    problems, checked = [], 0
    for path in manifests:
        for d in docs_of(path):
            if d.get("kind") != "Deployment":
                continue
            spec = d["spec"]["template"]["spec"]
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                cfg = None
                for m in c.get("volumeMounts", []):
                    cm = volumes.get(m["name"], {}).get("configMap", {}).get("name")
                    if cm in configs and m["mountPath"] == "/etc/ssrd":
                        cfg = configs[cm]
                if cfg is None:
                    continue
                checked += 1
                where = f"{path.relative_to(ROOT)} {d['metadata']['name']}/{c['name']}"
                grace = spec.get("terminationGracePeriodSeconds", 30)
                stop = cfg["drain_seconds"] + cfg["shutdown_timeout_ms"] / 1000
                if grace <= stop:
                    problems.append(f"{where}: terminationGracePeriodSeconds {grace} must exceed "
                                    f"drain_seconds + shutdown_timeout_ms/1000 = {stop:g}")
                workers = cfg.get("workers")
                if workers is None:
                    problems.append(f"{where}: set workers in ssrd.toml (default: every CPU of the node)")
                    continue
                res = c.get("resources", {})
                cpu = quantity_millicores(res.get("requests", {}).get("cpu", "0"))
                if cpu < 1000 * workers:
                    problems.append(f"{where}: cpu request {cpu}m is under one core per worker ({workers})")
                if "cpu" in res.get("limits", {}):
                    problems.append(f"{where}: a CPU limit throttles render threads (remove it)")
                mem = quantity_mib(res.get("limits", {}).get("memory", "0Mi"))
                need = workers * cfg["recycle_rss_mb"] + OVERHEAD_MIB
                if mem < need:
                    problems.append(f"{where}: memory limit {mem}Mi is under workers x recycle_rss_mb + "
                                    f"{OVERHEAD_MIB}Mi = {need}Mi")
    if checked == 0:
        problems.append("no Deployment mounts an ssrd.toml ConfigMap at /etc/ssrd")
    return problems


def check_unit_consistency(unit_text, toml_text):
    cfg = ssrd_options(toml_text)
    keys = {}
    for line in unit_text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            k, v = line.split("=", 1)
            keys[k.strip()] = v.strip()
    problems = []
    stop = cfg["drain_seconds"] + cfg["shutdown_timeout_ms"] / 1000
    timeout = int(keys.get("TimeoutStopSec", "90").rstrip("s"))
    if timeout <= stop:
        problems.append(f"TimeoutStopSec {timeout} must exceed drain_seconds + shutdown_timeout_ms/1000 = {stop:g}")
    if keys.get("KillMode") != "mixed":
        problems.append("KillMode must be mixed (SIGTERM to the supervisor alone)")
    if "-HUP" not in keys.get("ExecReload", ""):
        problems.append("ExecReload must send SIGHUP")
    if keys.get("RuntimeDirectory") != "ssrd" or cfg.get("run_dir") != "/run/ssrd":
        problems.append("run_dir must be the unit's RuntimeDirectory (/run/ssrd)")
    return problems


def check_promtool(manifests):
    promtool = shutil.which("promtool")
    if not promtool:
        if os.environ.get("SSRD_REQUIRE_PROMTOOL") == "1":
            return ["promtool not found (apt-get install prometheus)"]
        print("skip promtool checks: promtool not found", flush=True)
        return None
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in manifests:
            for d in docs_of(path):
                data = (d.get("data") or {}) if d.get("kind") == "ConfigMap" else {}
                if "prometheus.yml" in data:
                    # Debian's promtool is built without Kubernetes service
                    # discovery: check everything else, with a static
                    # target in its place.
                    conf = yaml.safe_load(data["prometheus.yml"])
                    for job in conf.get("scrape_configs", []):
                        if job.pop("kubernetes_sd_configs", None) is not None:
                            job["static_configs"] = [{"targets": ["127.0.0.1:9100"]}]
                    f = Path(tmp) / "prometheus.yml"
                    f.write_text(yaml.safe_dump(conf))
                    rc, out = run([promtool, "check", "config", "--syntax-only", str(f)])
                    if rc:
                        problems.append(f"{path.name}: {out}")
                if "config.yaml" in data:
                    # prometheus-adapter's template: fill it the way the
                    # adapter does, then let promtool parse the query.
                    for i, rule in enumerate(yaml.safe_load(data["config.yaml"])["rules"]):
                        q = rule["metricsQuery"].replace("<<.LabelMatchers>>", 'namespace="n",pod="p"')
                        q = q.replace("<<.GroupBy>>", "namespace, pod").replace("<<.Series>>", "s")
                        f = Path(tmp) / f"rule{i}.yml"
                        f.write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": [
                            {"record": rule["name"]["as"], "expr": q}]}]}))
                        rc, out = run([promtool, "check", "rules", str(f)])
                        if rc:
                            problems.append(f"{path.name} rule {i}: {out}")
    return problems


# ----------------------------------------------------------------- main ---

def check_all(manifests, unit, tomls, only=None):
    """Runs every check (or only the one named) over the given files;
    returns {check: problems}; a check that cannot run here is left out."""
    core = [p for p in manifests if not any(is_crd(d) for d in docs_of(p))]
    crds = [p for p in manifests if any(is_crd(d) for d in docs_of(p))]

    def tomls_ok():
        problems = []
        for where, text in tomls:
            problems += check_toml(text, where)
        return problems

    def systemd_consistency():
        systemd_toml = next(t for w, t in tomls if w.endswith("systemd/ssrd.toml"))
        return check_unit_consistency(Path(unit).read_text(), systemd_toml)

    checks = {
        "kubernetes core kinds": lambda: check_core(core),
        "prometheus-operator kinds": lambda: check_crds(crds) if crds else ["no ServiceMonitor/PodMonitor found"],
        "ssrd.toml files": tomls_ok,
        "systemd unit": lambda: check_unit(unit),
        "consistency (kubernetes)": lambda: check_consistency(manifests),
        "consistency (systemd)": systemd_consistency,
        "promtool": lambda: check_promtool(manifests),
    }
    out = {}
    for name, fn in checks.items():
        if only is None or name == only:
            problems = fn()
            if problems is not None:
                out[name] = problems
    return out


def collect_tomls(manifests):
    tomls = []
    for path in manifests:
        for d in docs_of(path):
            if d.get("kind") == "ConfigMap" and "ssrd.toml" in (d.get("data") or {}):
                tomls.append((f"{path.relative_to(ROOT)} ({d['metadata']['name']})", d["data"]["ssrd.toml"]))
    for p in (DEPLOY / "container" / "ssrd.toml", DEPLOY / "systemd" / "ssrd.toml"):
        tomls.append((str(p.relative_to(ROOT)), p.read_text()))
    return tomls


# Misspellings the same checks must reject: (file, old, new, the check that
# must fail). Each is applied to a copy of the real file.
MUTATIONS = [
    ("kubernetes/standalone/deployment.yaml", "timeoutSeconds: 3", "timeoutSecnds: 3", "kubernetes core kinds"),
    ("kubernetes/standalone/deployment.yaml", "readOnlyRootFilesystem", "readOnlyRootFileSystem", "kubernetes core kinds"),
    ("kubernetes/standalone/service.yaml", "targetPort: metrics", "targetPrt: metrics", "kubernetes core kinds"),
    ("kubernetes/standalone/hpa.yaml", "averageUtilization", "averageUtilisation", "kubernetes core kinds"),
    ("kubernetes/standalone/pdb.yaml", "maxUnavailable", "maxUnavailabel", "kubernetes core kinds"),
    ("kubernetes/sidecar/deployment.yaml", "restartPolicy: Always", "restartPolicyy: Always", "kubernetes core kinds"),
    ("kubernetes/standalone/servicemonitor.yaml", "interval: 15s", "intervall: 15s", "prometheus-operator kinds"),
    ("kubernetes/standalone/servicemonitor.yaml", "  labels:", "  lables:", "prometheus-operator kinds"),
    ("kubernetes/sidecar/podmonitor.yaml", "podMetricsEndpoints", "podMetricEndpoints", "prometheus-operator kinds"),
    ("kubernetes/standalone/configmap.yaml", "    workers = 2", "    workres = 2", "ssrd.toml files"),
    ("container/ssrd.toml", 'access_log = "stderr"', 'acess_log = "stderr"', "ssrd.toml files"),
    ("systemd/ssrd.service", "\nKillMode=mixed", "\nKilMode=mixed", "systemd unit"),
    ("systemd/ssrd.service", "ExecReload=", "ExecReloads=", "systemd unit"),
    ("kubernetes/standalone/deployment.yaml", "terminationGracePeriodSeconds: 30",
     "terminationGracePeriodSeconds: 20", "consistency (kubernetes)"),
    ("systemd/ssrd.service", "TimeoutStopSec=45", "TimeoutStopSec=30", "consistency (systemd)"),
    ("kubernetes/autoscaling/prometheus-adapter-config.yaml", "[2m])) by", "[2m]) by", "promtool"),
]


def mutated_tree(rel, old, new):
    """A copy of deploy/ with one file changed; returns (tmpdir, root)."""
    tmp = tempfile.mkdtemp(prefix="ssrd-deploy-mut-")
    root = Path(tmp) / "deploy"
    shutil.copytree(DEPLOY, root, ignore=shutil.ignore_patterns("node_modules", ".venv"))
    target = root / rel
    text = target.read_text()
    if old not in text:
        raise SystemExit(f"mutation {rel}: {old!r} not found (update MUTATIONS)")
    target.write_text(text.replace(old, new, 1))
    return tmp, root


def main():
    global ROOT
    if not SSRD.exists():
        sys.exit(f"{SSRD} not found: build it first (cargo build --release)")
    manifests = sorted(K8S.rglob("*.yaml"))
    tomls = collect_tomls(manifests)
    baseline = check_all(manifests, UNIT, tomls)
    for check, problems in baseline.items():
        report(check, not problems, " | ".join(problems))
    report("manifests found", len(manifests) >= 8, f"{len(manifests)} files")

    # Each misspelling must be caught by the check it targets.
    real_root = ROOT
    for rel, old, new, check in MUTATIONS:
        name = f"typo rejected: {rel} {old.strip()!r} -> {new.strip()!r}"
        if check not in baseline:
            print(f"skip {name}: {check} does not run here", flush=True)
            continue
        if baseline[check]:
            report(name, False, f"cannot tell: {check} already fails on the real files")
            continue
        tmp, root = mutated_tree(rel, old, new)
        try:
            ROOT = root.parent
            m = sorted((root / "kubernetes").rglob("*.yaml"))
            got = check_all(m, root / "systemd" / "ssrd.service", collect_tomls_at(root, m), only=check)
            problems = got.get(check)
            report(name, bool(problems),
                   f"by {check}: {' '.join(problems[0].split())[:160]}" if problems else f"{check} accepted it")
        finally:
            ROOT = real_root
            shutil.rmtree(tmp, ignore_errors=True)

    passed, failed = results.count(True), results.count(False)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def collect_tomls_at(root, manifests):
    tomls = []
    for path in manifests:
        for d in docs_of(path):
            if d.get("kind") == "ConfigMap" and "ssrd.toml" in (d.get("data") or {}):
                tomls.append((f"{path} ({d['metadata']['name']})", d["data"]["ssrd.toml"]))
    for p in (root / "container" / "ssrd.toml", root / "systemd" / "ssrd.toml"):
        tomls.append((str(p), p.read_text()))
    return tomls


if __name__ == "__main__":
    main()
