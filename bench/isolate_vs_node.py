"""One isolate against Node: the same pages rendered by ssrd's render loop
and by a Node process, no HTTP on either side.

Issue 19 asks for a real page in one isolate at >= 1.3x Node on the same
bundle. ssrd's side is `ssrd render --batch FILE --repeat N` (the worker's
own job loop: the batch body parsed, every job rendered, the answer written,
per iteration); Node's is bench/hypernova/isolate.js (the batch parsed,
every job rendered by js-bundle/dist/node.cjs, React's Node server build of
the same sources A18 serves, and the answer written as JSON bytes). Two
pages: the example's search page (the large batch), and the same page in
five locales and currencies in one batch (Intl formatting in each), the
shape of a site served in several languages. Alternating rounds, as the
load section; the report gives each side's median and the per-round ratio.

Used by bench.py's `ceiling` section; runs nothing but local processes.
"""

import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

import bench as B

NODE_LOOP = B.BENCH / "hypernova" / "isolate.js"

# (locale, currency) of the five-locale page: separators, digits, scripts
# and currency formats that differ. Each one is in the ICU data both sides
# carry and formats alike there (`same_html` checks; the worker's ICU lacks
# some languages Node has, e.g. Georgian: docs/worker.md, "Intl and ICU").
LOCALES = [("en-US", "USD"), ("de-DE", "EUR"), ("ja-JP", "JPY"), ("pt-BR", "BRL"), ("ar-EG", "EGP")]


def locales_batch(path):
    """The large batch's search page once per locale, as one batch body."""
    large = json.loads((B.FIXTURES / B.FIXTURE_FILES["large"]).read_text())
    page = next(job for job in large.values() if job["name"] == "SearchResults")
    batch = {}
    for i, (locale, currency) in enumerate(LOCALES):
        batch[str(i)] = {"name": page["name"], "data": dict(page["data"], locale=locale, currency=currency),
                         "metadata": {}}
    Path(path).write_text(json.dumps(batch, ensure_ascii=False))
    return path


def same_html(batch):
    """Whether ssrd and Node render every job of the batch to the same HTML:
    a speed comparison of different pages would mean nothing."""
    ssrd = subprocess.run([str(B.SSRD), "render", "--batch", str(batch), "--bundle", str(B.SERVER_BUNDLE)],
                          capture_output=True, text=True, timeout=120)
    node = subprocess.run(["node", str(NODE_LOOP), str(batch), "--print"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, NODE_ENV="production"))
    try:
        a, b = json.loads(ssrd.stdout)["results"], json.loads(node.stdout)["results"]
    except (ValueError, KeyError):
        return False
    return a.keys() == b.keys() and all(a[k].get("html") == b[k].get("html") for k in a)


def one(system, batch, repeat):
    """Batches per second of one run (and its mean and p99 ms)."""
    if system == "ssrd":
        cmd = [str(B.SSRD), "render", "--batch", str(batch), "--bundle", str(B.SERVER_BUNDLE),
               "--repeat", str(repeat)]
        env = None
    else:
        cmd = ["node", str(NODE_LOOP), str(batch), str(repeat)]
        # As A18 runs its Node servers.
        env = dict(os.environ, NODE_ENV="production")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-1500:]}")
    stats = json.loads(p.stderr.strip().splitlines()[-1])
    return {"per_s": stats["renders_per_s"], "mean_ms": stats["mean_ms"], "p99_ms": stats["p99_ms"],
            "answer_bytes": stats["output_bytes"]}


def runs(rounds, quick):
    """Alternating rounds of both systems on both pages."""
    repeat = {"example page": 60 if quick else 200, "five locales": 12 if quick else 40}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        batches = {"example page": B.FIXTURES / B.FIXTURE_FILES["large"],
                   "five locales": locales_batch(Path(tmp) / "five-locales.json")}
        same = {page: same_html(batch) for page, batch in batches.items()}
        for rnd in range(rounds):
            for page, batch in batches.items():
                for system in ("ssrd", "Node"):
                    row = {"round": rnd, "page": page, "system": system, "same_html": same[page],
                           **one(system, batch, repeat[page])}
                    B.log(f"one isolate, {page}, {system}: {row['per_s']:.1f} batches/s")
                    rows.append(row)
    return rows


def summary(rows):
    """Per page: each side's median batches/s and the per-round ratio."""
    out = {}
    for page in dict.fromkeys(r["page"] for r in rows):
        by = {(r["system"], r["round"]): r for r in rows if r["page"] == page}
        rounds = sorted({rnd for _, rnd in by})
        ratios = [by[("ssrd", n)]["per_s"] / by[("Node", n)]["per_s"] for n in rounds
                  if ("ssrd", n) in by and ("Node", n) in by]
        out[page] = {
            "ssrd": statistics.median(by[("ssrd", n)]["per_s"] for n in rounds),
            "Node": statistics.median(by[("Node", n)]["per_s"] for n in rounds),
            "ratio": statistics.median(ratios) if ratios else None,
            "ratio_range": [min(ratios), max(ratios)] if ratios else None,
            "same_html": all(r["same_html"] for r in rows if r["page"] == page),
        }
    return out


def report(rows, node_version):
    """The report's section, as Markdown lines."""
    lines = ["## One isolate against Node", "",
             f"`ssrd render --batch FILE --repeat N` against `bench/hypernova/isolate.js` on Node "
             f"{node_version} (the batch parsed, every job rendered with React's Node build of the same "
             "sources, the answer written as JSON; `NODE_ENV=production`), alternating rounds, one process "
             "each, no HTTP. *Five locales*: the search page in "
             + ", ".join(f"{loc}/{cur}" for loc, cur in LOCALES) + " in one batch. Ratio: ssrd / Node of the "
             "same round, median (min–max). *Same HTML*: every job's HTML from both sides compared before timing.", "",
             "| page | ssrd batches/s | Node batches/s | ssrd / Node | same HTML | target |",
             "|---|---|---|---|---|---|"]
    for page, s in summary(rows).items():
        lo, hi = s["ratio_range"] or (None, None)
        lines.append(f"| {page} | {B.fmt(s['ssrd'])} | {B.fmt(s['Node'])} | "
                     f"{B.range_str(s['ratio'], lo, hi, 2)}× | {'yes' if s['same_html'] else '**no**'} | ≥ 1.3× |")
    lines.append("")
    return lines
