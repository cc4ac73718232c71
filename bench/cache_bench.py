"""The render cache's section of the benchmark (bench.py --sections cache).

What it measures, on the example bundle (js-bundle/dist/server.js) with a
`cache` declaration appended to a copy of it (the bundle itself and every
other section stay uncached, so their ceiling figures stay honest):

- a Zipf mix of pages and props (`zipf_mix`, below: deterministic, seeded),
  with the cache on (the default budget) and off (`--render-cache-bytes 0`,
  the same bundle), in alternating rounds: req/s, p50/p99 and the jobs'
  hit ratio from /metrics;
- a hostile mix, every job's props unique, with a small budget: req/s and
  p99 against the cache off, and the largest `ssrd_render_cache_bytes` any
  scrape during the run showed against the budget (it must never pass it).

ab sends one body, so the load comes from `ZipfLoad`: worker processes (not
threads: the GIL would cap it first), each on one keep-alive connection,
cycling through the mix from its own offset. The client shares the CPUs
with the tier: figures from a small box are a floor for both modes alike.
"""

import http.client
import json
import multiprocessing
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_BUNDLE = ROOT / "js-bundle" / "dist" / "server.js"
SMALL = ROOT / "bench" / "fixtures" / "batch-small.json"

# The example bundle's components, declared cached for this section only.
CACHE_DECLARATION = {
    "NavBar": {"maxEntries": 5000, "ttlMs": 300000},
    "SearchBar": {"maxEntries": 5000, "ttlMs": 300000},
    "ListingCard": {"maxEntries": 20000, "ttlMs": 300000},
}

# The mix: pages (one listing each), visitors (the NavBar's user) and
# searches, each drawn from a Zipf distribution (s = 1.1: a few pages,
# visitors and cities take most of the traffic, a long tail the rest).
PAGES = 20000
USERS = 5000
CITIES = ["Kyoto", "Lisbon", "Paris", "Rome", "Oslo", "Lima", "Cairo", "Austin", "Seoul", "Porto",
          "Hanoi", "Quito", "Turin", "Bergen", "Nice", "Cusco", "Accra", "Perth", "Cork", "Graz"]
ZIPF_S = 1.1
MIX_LEN = 20000
SEED = 19


def cached_bundle(dir_):
    """The example bundle with the cache declaration appended (a copy)."""
    path = Path(dir_) / "server-cached.js"
    decl = json.dumps(CACHE_DECLARATION)
    path.write_text(SERVER_BUNDLE.read_text() + f"\n;globalThis.ssrd.cache = {decl};\n")
    return path


def _zipf_sampler(n, s, rng):
    weights = [1.0 / (k ** s) for k in range(1, n + 1)]
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)

    def draw():
        x = rng.random() * total
        lo, hi = 0, n - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if cum[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        return lo
    return draw


def zipf_mix(length=MIX_LEN, seed=SEED, unique=False):
    """`length` /batch bodies (bytes): a page's NavBar (its visitor),
    SearchBar (a city) and ListingCard (its listing), props shaped as the
    small fixture's. `unique`: every job's props carry the request's own
    number (the hostile mix: nothing ever repeats)."""
    base = json.loads(SMALL.read_text())
    nav, search, card = base["0"]["data"], base["2"]["data"], base["3"]["data"]
    rng = random.Random(seed)
    page, user, city = (_zipf_sampler(PAGES, ZIPF_S, rng), _zipf_sampler(USERS, ZIPF_S, rng),
                        _zipf_sampler(len(CITIES), ZIPF_S, rng))
    bodies = []
    for i in range(length):
        p, u, c = page(), user(), city()
        nav_props = dict(nav, user=dict(nav["user"], name=f"user{u}", unread=u % 7,
                                        avatarUrl=f"https://images.example.com/users/{u}/avatar.jpg"))
        search_props = dict(search, query=CITIES[c])
        listing = dict(card["listing"], id=40000000 + p, title=f"{card['listing']['title']} #{p}",
                       city=CITIES[p % len(CITIES)])
        card_props = dict(card, listing=listing)
        if unique:
            for props in (nav_props, search_props, card_props):
                props["request"] = i
        batch = {
            "0": {"name": "NavBar", "data": nav_props, "metadata": {}},
            "1": {"name": "SearchBar", "data": search_props, "metadata": {}},
            "2": {"name": "ListingCard", "data": card_props, "metadata": {}},
        }
        bodies.append(json.dumps(batch).encode())
    return bodies


def _client(port, bodies, offset, stride, until, warm_until, out):
    """One keep-alive client: sends bodies[offset], bodies[offset + stride]…
    until `until`; latencies after `warm_until` go to `out`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat, ok, failed, i = [], 0, 0, offset
    while True:
        now = time.time()
        if now >= until:
            break
        body = bodies[i % len(bodies)]
        i += stride
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/batch", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            good = r.status == 200 and b'"success":false' not in data
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            good = False
        if now >= warm_until:
            lat.append((time.perf_counter() - t0) * 1000.0)
            ok += good
            failed += not good
    conn.close()
    out.put((lat, ok, failed))


class ZipfLoad:
    """`concurrency` client processes for `seconds` (after `warm` seconds
    not counted) over `bodies`; `run()` returns req/s, p50/p99, failures."""

    def __init__(self, port, bodies, concurrency, seconds, warm=2.0):
        self.port, self.bodies, self.concurrency = port, bodies, concurrency
        self.seconds, self.warm = seconds, warm

    def run(self):
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        start = time.time()
        warm_until, until = start + self.warm, start + self.warm + self.seconds
        procs = [ctx.Process(target=_client, args=(self.port, self.bodies, k * 997, self.concurrency,
                                                   until, warm_until, out), daemon=True)
                 for k in range(self.concurrency)]
        for p in procs:
            p.start()
        results = [out.get(timeout=self.warm + self.seconds + 120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        lat = sorted(x for r in results for x in r[0])
        ok = sum(r[1] for r in results)
        failed = sum(r[2] for r in results)
        q = statistics.quantiles(lat, n=100) if len(lat) >= 100 else [None] * 99
        return {"requests": len(lat), "ok": ok, "failed": failed,
                "rps": len(lat) / self.seconds, "p50": q[49], "p99": q[98],
                "concurrency": self.concurrency}


def _metric(text, name):
    """The sum of a metric's series named `name` (any labels)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _max_series(text, name):
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")]
    return max(values, default=0.0)


def cache_runs(workers, quick, bench):
    """The section: rows for the report. `bench` is bench.py's module (its
    Tier, get_text and log)."""
    seconds = 10 if quick else 30
    rounds = 2 if quick else 3
    concurrency = max(4, 2 * workers)
    tmp = tempfile.mkdtemp(prefix="ssrd-bench-cache-")
    bundle = cached_bundle(tmp)
    mix = zipf_mix()
    hostile = zipf_mix(unique=True)
    rows = []

    def one(mix_name, bodies, mode, extra, rnd):
        with bench.Tier(workers, bundle=bundle, extra=extra) as tier:
            r = ZipfLoad(tier.port, bodies, concurrency, seconds).run()
            # The workers report every second: wait for the last heartbeat.
            time.sleep(1.5)
            status, text = bench.get_text(tier.metrics_url())
            if status == 200:
                hits = _metric(text, "ssrd_render_cache_hits_total")
                misses = _metric(text, "ssrd_render_cache_misses_total")
                r.update(hits=hits, misses=misses,
                         hit_ratio=hits / (hits + misses) if hits + misses else None,
                         evictions=_metric(text, "ssrd_render_cache_evictions_total"),
                         bytes_end=_metric(text, "ssrd_render_cache_bytes"))
        r.update(mix=mix_name, mode=mode, round=rnd)
        rows.append(r)
        bench.log(f"cache {mix_name} {mode} (round {rnd + 1}): {r['rps']:.0f} req/s, p99 "
                  f"{r['p99'] and round(r['p99'], 1)} ms, failed {r['failed']}, hit ratio {r.get('hit_ratio')}")
        return r

    for rnd in range(rounds):
        one("zipf", mix, "cache on", [], rnd)
        one("zipf", mix, "cache off", ["--render-cache-bytes", "0"], rnd)

    # The hostile mix: a budget the run fills many times over, watched
    # while the load runs.
    budget = 4 << 20
    for rnd in range(rounds):
        with bench.Tier(workers, bundle=bundle, extra=["--render-cache-bytes", str(budget)]) as tier:
            highest, scrapes, stop = [0.0], [0], threading.Event()

            def watch():
                while not stop.is_set():
                    status, text = bench.get_text(tier.metrics_url())
                    if status == 200:
                        highest[0] = max(highest[0], _max_series(text, "ssrd_render_cache_bytes"))
                        scrapes[0] += 1
                    stop.wait(0.25)
            t = threading.Thread(target=watch, daemon=True)
            t.start()
            r = ZipfLoad(tier.port, hostile, concurrency, seconds).run()
            time.sleep(1.5)
            stop.set()
            t.join(5)
            status, text = bench.get_text(tier.metrics_url())
            r.update(mix="hostile", mode="cache on", round=rnd, budget=budget,
                     max_bytes_seen=max(highest[0], _max_series(text, "ssrd_render_cache_bytes")),
                     scrapes=scrapes[0], hits=_metric(text, "ssrd_render_cache_hits_total"),
                     misses=_metric(text, "ssrd_render_cache_misses_total"),
                     evictions=_metric(text, "ssrd_render_cache_evictions_total"))
            r["budget_held"] = r["max_bytes_seen"] <= budget
        rows.append(r)
        bench.log(f"cache hostile (round {rnd + 1}): {r['rps']:.0f} req/s, p99 {r['p99'] and round(r['p99'], 1)} ms, "
                  f"max bytes {r['max_bytes_seen']:.0f} of {budget}, evictions {r['evictions']:.0f}")
        one("hostile", hostile, "cache off", ["--render-cache-bytes", "0"], rnd)
    return rows


def summarize(rows):
    """Median req/s and p99 per (mix, mode): the report's table."""
    out = {}
    for r in rows:
        out.setdefault((r["mix"], r["mode"]), []).append(r)
    table = []
    for (mix, mode), rs in out.items():
        table.append({
            "mix": mix, "mode": mode, "rounds": len(rs),
            "rps": statistics.median(r["rps"] for r in rs),
            "p99": statistics.median(r["p99"] for r in rs if r["p99"] is not None),
            "failed": sum(r["failed"] for r in rs),
            "hit_ratio": statistics.median([r["hit_ratio"] for r in rs if r.get("hit_ratio") is not None] or [0]),
            "max_bytes_seen": max((r.get("max_bytes_seen", 0) for r in rs), default=0),
            "budget": rs[0].get("budget"),
        })
    return table


def report_lines(rows):
    """The markdown section."""
    lines = ["## Render cache (Zipf mix of pages and props; hostile: every request unique)", "",
             "| mix | mode | rounds | req/s (median) | p99 ms (median) | failed | job hit ratio | max cache bytes seen / budget |",
             "|---|---|---|---|---|---|---|---|"]
    for t in summarize(rows):
        seen = f"{t['max_bytes_seen']:.0f} / {t['budget']}" if t["budget"] else ""
        lines.append(f"| {t['mix']} | {t['mode']} | {t['rounds']} | {t['rps']:.0f} | {t['p99']:.1f} | "
                     f"{t['failed']} | {t['hit_ratio']:.2f} | {seen} |")
    return lines + [""]


def append_report(stem, rows):
    """Adds the section to the report bench.py wrote (`stem`.md, .json)."""
    md, js = stem.with_suffix(".md"), stem.with_suffix(".json")
    md.write_text(md.read_text() + "\n" + "\n".join(report_lines(rows)))
    summary = json.loads(js.read_text())
    summary["cache"] = {"runs": rows, "table": summarize(rows)}
    js.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    # The mix's own figures: how often a job's props repeat.
    mix = zipf_mix()
    jobs = [(k, json.dumps(v["data"], sort_keys=True)) for b in mix for k, v in json.loads(b).items()]
    print(json.dumps({"bodies": len(mix), "distinct bodies": len(set(mix)),
                      "jobs": len(jobs), "distinct jobs": len(set(jobs))}))
