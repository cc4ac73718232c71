#!/usr/bin/env python3
"""ssrd's benchmark: Apache Bench load against ssrd, A18 (Hypernova behind
ssrd's own nginx and haproxy: a18.py) and Hypernova's cluster in
alternating rounds, the in-isolate ceiling, boot and memory figures and
chaos runs, written up as markdown + JSON + PNG plots.

Run it through bench/run (which installs what is missing and builds first).
Everything listens on 127.0.0.1 only; every process it starts is stopped
before it returns, and every wait has a timeout.
"""

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
import time
import http.client
import statistics
from contextlib import contextmanager
from pathlib import Path

if __name__ == "__main__":
    # bench/a18.py imports this file as `bench`: let it find this module,
    # not load a second copy.
    sys.modules.setdefault("bench", sys.modules[__name__])

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SSRD = ROOT / "target" / "release" / "ssrd"
FIXTURES = BENCH / "fixtures"
SERVER_BUNDLE = ROOT / "js-bundle" / "dist" / "server.js"
FAULTS_BUNDLE = ROOT / "js-bundle" / "dist" / "faults.js"
HYPERNOVA = BENCH / "hypernova" / "server.js"

FIXTURE_FILES = {"small": "batch-small.json", "large": "batch-large.json"}
CONCURRENCY = [5, 13, 20]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- ports ----

def free_block(n):
    """A block of n consecutive free loopback ports, below Linux's ephemeral
    range (32768-60999), where ab's own outgoing connections cannot take one
    before the tier binds it."""
    for _ in range(200):
        base = random.randint(20000, 32700 - n)
        socks = []
        try:
            for i in range(n):
                s = socket.socket()
                s.bind(("127.0.0.1", base + i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free block of ports")


# Every run starts a fresh tier (or peer) on fresh ports, so a full run
# leaves far more loopback connections in TIME_WAIT than one long-lived
# tier ever can (one tier caps them at the ephemeral range per hop). Past
# the kernel's tcp_max_tw_buckets, connections close without TIME_WAIT, and
# from ~10 s to ~60 s after that overflow some loopback SYNs go unanswered
# for a second (TcpExtTCPSynRetrans climbs, sockets sit in SYN-SENT):
# requests stall 1 s, and nginx's 2 s connect timeout to haproxy answers
# 504 (bench/README.md, "TIME_WAIT"). That is the box, not the system
# under test: every run starts with TIME_WAIT under half the cap (so it
# cannot overflow it) and a minute after any overflow.
SETTLE = {"waits": 0, "seconds": 0.0, "overflow": None}


def tcp_counters():
    """(sockets in TIME_WAIT, TcpExt TCPTimeWaitOverflow) from /proc."""
    tw, overflow = 0, 0
    try:
        m = re.search(r"^TCP:.* tw (\d+)", Path("/proc/net/sockstat").read_text(), re.M)
        tw = int(m.group(1)) if m else 0
        lines = [l.split() for l in Path("/proc/net/netstat").read_text().splitlines()
                 if l.startswith("TcpExt:")]
        if len(lines) == 2 and "TCPTimeWaitOverflow" in lines[0]:
            overflow = int(lines[1][lines[0].index("TCPTimeWaitOverflow")])
    except (OSError, ValueError):
        pass
    return tw, overflow


def settle_tcp(limit_s=120):
    """Waits (up to limit_s) until TIME_WAIT sockets are under half the
    kernel's cap and no overflow happened in the last 60 s."""
    try:
        cap = int(Path("/proc/sys/net/ipv4/tcp_max_tw_buckets").read_text())
    except (OSError, ValueError):
        return
    started = time.time()
    quiet_since = started
    tw, overflow = tcp_counters()
    if SETTLE["overflow"] is None:
        SETTLE["overflow"] = overflow
    waited_for_overflow = overflow != SETTLE["overflow"]
    while time.time() - started < limit_s:
        if overflow != SETTLE["overflow"]:
            SETTLE["overflow"], quiet_since = overflow, time.time()
        recent = waited_for_overflow and time.time() - quiet_since < 60
        if tw <= cap // 2 and not recent:
            break
        time.sleep(1)
        tw, overflow = tcp_counters()
    waited = time.time() - started
    if waited >= 1:
        SETTLE["waits"] += 1
        SETTLE["seconds"] += waited
        log(f"waited {waited:.0f}s for the box's TIME_WAIT sockets ({tw} now, cap {cap})")


def wait_port_closed(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.05)


# -------------------------------------------------------------- systems ----

class Tier:
    """`ssrd up` on a free block of ports, stopped on exit."""

    def __init__(self, workers, bundle=SERVER_BUNDLE, balance="first", extra=(), keep_log_as=None, env=None):
        self.workers = workers
        # Extra environment for the tier (and so its workers), e.g. OTEL_*.
        self.env = dict(os.environ, **(env or {}))
        self.base = free_block(workers + 4)
        self.port = self.base
        self.run_dir = Path(tempfile.mkdtemp(prefix="ssrd-bench-"))
        self.cmd = [
            str(SSRD), "up", "--workers", str(workers), "--bundle", str(bundle),
            "--balance", balance, "--port", str(self.base),
            "--haproxy-port", str(self.base + 1), "--stats-port", str(self.base + 2),
            "--metrics-port", str(self.base + 3), "--worker-base-port", str(self.base + 4),
            "--run-dir", str(self.run_dir), "--access-log", "false",
            # No drain before each run's stop unless the run asks for one.
            *([] if "--drain-seconds" in extra else ["--drain-seconds", "0"]),
            *extra,
        ]
        self.proc = None
        # Not in the run dir: a chaos run deletes that.
        self.log_dir = Path(tempfile.mkdtemp(prefix="ssrd-bench-log-"))
        self.log_path = self.log_dir / "supervisor.log"
        # A file name: keep the supervisor's log in bench/runs/ (gitignored).
        self.keep_log_as = keep_log_as

    def __enter__(self):
        settle_tcp()
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.log_file, text=True,
                                     env=self.env)
        line = read_line(self.proc.stdout, 120)
        if not line or '"ready":true' not in line:
            self.stop()
            raise RuntimeError(f"ssrd up did not start: {self.log_path.read_text()[-2000:]}")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        return self

    def url(self, path="/batch"):
        return f"http://127.0.0.1:{self.port}{path}"

    def metrics_url(self):
        return f"http://127.0.0.1:{self.base + 3}/metrics"

    def worker_pids(self):
        """Pids of this tier's worker processes (children of the supervisor)."""
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == self.proc.pid and b"worker" in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
        return pids

    def pid_of(self, needle):
        """A live process whose command line contains needle."""
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                if needle.encode() in (d / "cmdline").read_bytes() and \
                        not (d / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    return int(d.name)
            except (OSError, IndexError):
                continue
        return None

    def log_lines(self):
        try:
            return self.log_path.read_text().splitlines()
        except OSError:
            return []

    def count_log(self, event):
        """Lines of one log event (their "event" field: docs/operations.md,
        "Log events"); the words of "msg" are for people."""
        n = 0
        for line in self.log_lines():
            try:
                n += json.loads(line).get("event") == event
            except (ValueError, AttributeError):
                pass
        return n

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        wait_port_closed(self.port)

    def __exit__(self, *exc):
        self.stop()
        self.log_file.close()
        if self.keep_log_as:
            runs = BENCH / "runs"
            runs.mkdir(exist_ok=True)
            shutil.copy(self.log_path, runs / self.keep_log_as)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.rmtree(self.log_dir, ignore_errors=True)


class Hypernova:
    """The reference Node server (bench/hypernova) with N cluster workers."""

    def __init__(self, workers):
        self.workers = workers
        self.port = free_block(1)
        self.proc = None

    def __enter__(self):
        env = dict(os.environ, PORT=str(self.port), WORKERS=str(self.workers), NODE_ENV="production")
        self.proc = subprocess.Popen(
            ["node", str(HYPERNOVA)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        body = (FIXTURES / FIXTURE_FILES["small"]).read_bytes()
        deadline = time.time() + 60
        while time.time() < deadline:
            status, _ = post(self.port, "/batch", body, timeout=5)
            if status == 200:
                return self
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("hypernova did not start")

    def url(self, path="/batch"):
        return f"http://127.0.0.1:{self.port}{path}"

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        wait_port_closed(self.port)


def get_text(url, timeout=10):
    """One GET: (status, text) or (None, error)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except (OSError, ValueError) as e:
        return None, repr(e)


def read_line(pipe, timeout):
    out = []
    t = threading.Thread(target=lambda: out.append(pipe.readline()), daemon=True)
    t.start()
    t.join(timeout)
    return out[0] if out else None


def post(port, path, body, timeout=30, headers=None):
    """One POST on a fresh connection: (status, body) or (None, error)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        conn.request("POST", path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        return None, repr(e).encode()
    finally:
        conn.close()


# ------------------------------------------------------------------ ab -----

AB_PCT = re.compile(r"^\s+(\d+)%\s+(\d+)")


def ab(url, body_file, concurrency, requests, timeout, headers=()):
    """One Apache Bench run, parsed."""
    cmd = ["ab", "-l", "-r", "-s", "30", "-c", str(concurrency), "-n", str(requests),
           "-T", "application/json", "-p", str(body_file),
           *[a for h in headers for a in ("-H", h)], url]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        return {"error": f"ab timed out after {timeout}s", "concurrency": concurrency}
    r = {"concurrency": concurrency, "requests": requests}
    for key, pattern in [
        ("rps", r"Requests per second:\s+([\d.]+)"),
        ("mean_ms", r"Time per request:\s+([\d.]+) \[ms\] \(mean\)"),
        ("complete", r"Complete requests:\s+(\d+)"),
        ("failed", r"Failed requests:\s+(\d+)"),
        ("non2xx", r"Non-2xx responses:\s+(\d+)"),
    ]:
        m = re.search(pattern, out)
        r[key] = float(m.group(1)) if m else 0.0
    pct = {int(m.group(1)): float(m.group(2)) for m in map(AB_PCT.match, out.splitlines()) if m}
    r.update(p50=pct.get(50), p90=pct.get(90), p99=pct.get(99), max=pct.get(100))
    if not pct:
        r["error"] = out[-500:]
    return r


def load_runs(system_name, url, n_for, warm, rnd=0):
    rows = []
    for fixture, file in FIXTURE_FILES.items():
        body = FIXTURES / file
        ab(url, body, 4, warm, 120)  # warm JITs and connection paths
        for c in CONCURRENCY:
            n = n_for[fixture]
            r = ab(url, body, c, n, timeout=max(120, n))
            r.update(system=system_name, fixture=fixture, round=rnd)
            log(f"{system_name} (round {rnd + 1}): {fixture} c={c} n={n}: {r.get('rps', 0):.1f} req/s, "
                f"p99 {r.get('p99')} ms, failed {r.get('failed')}")
            rows.append(r)
    return rows


# The systems of the load section, in alternating rounds: ssrd's tier, A18
# (Hypernova behind the same nginx and haproxy: bench/a18.py) and HN
# (Hypernova's own cluster, as Airbnb ships it).
SYSTEMS = ["ssrd", "A18", "HN"]


def start_system(name, workers):
    if name == "ssrd":
        return Tier(workers)
    settle_tcp()
    if name == "A18":
        import a18
        return a18.A18(workers)
    return Hypernova(workers)


def load_rounds(workers, n_for, warm, rounds):
    """Every system, both batches, every concurrency, in `rounds` rounds;
    each round starts each system afresh and rotates the order (round 2
    starts with A18, round 3 with HN), so a slow minute on the box does
    not always land on the same system."""
    rows = []
    for rnd in range(rounds):
        order = SYSTEMS[rnd % len(SYSTEMS):] + SYSTEMS[:rnd % len(SYSTEMS)]
        for name in order:
            with start_system(name, workers) as system:
                rows += load_runs(name, system.url(), n_for, warm, rnd)
    return rows


def aggregate(load):
    """One row per system, batch and concurrency: the median over rounds of
    each figure, with min and max (`rps_min`, `rps_max`, ...)."""
    out = []
    for system, fixture, c in dict.fromkeys((r["system"], r["fixture"], r["concurrency"]) for r in load):
        rs = [r for r in load if (r["system"], r["fixture"], r["concurrency"]) == (system, fixture, c)]
        row = {"system": system, "fixture": fixture, "concurrency": c, "rounds": len(rs),
               "requests": rs[0].get("requests"),
               "failed": sum(r.get("failed") or 0 for r in rs), "non2xx": sum(r.get("non2xx") or 0 for r in rs),
               "errors": sum(1 for r in rs if r.get("error"))}
        for key in ("rps", "mean_ms", "p50", "p90", "p99", "max"):
            xs = [r[key] for r in rs if r.get(key) is not None]
            row[key] = statistics.median(xs) if xs else None
            row[f"{key}_min"] = min(xs) if xs else None
            row[f"{key}_max"] = max(xs) if xs else None
        out.append(row)
    return out


def round_ratios(load, other, fixture, c, key):
    """ssrd / other for one figure, round by round (each round's ssrd run
    against the same round's run of the other): (median, min, max)."""
    xs = []
    for rnd in sorted({r.get("round", 0) for r in load}):
        a = next((r.get(key) for r in load if (r["system"], r["fixture"], r["concurrency"], r.get("round", 0))
                  == ("ssrd", fixture, c, rnd)), None)
        b = next((r.get(key) for r in load if (r["system"], r["fixture"], r["concurrency"], r.get("round", 0))
                  == (other, fixture, c, rnd)), None)
        if a and b:
            xs.append(a / b)
    if not xs:
        return None, None, None
    return round(statistics.median(xs), 3), round(min(xs), 3), round(max(xs), 3)


# ------------------------------------------------------------- ceiling -----

def ceiling(workers, repeat_for):
    rows = []
    for fixture, file in FIXTURE_FILES.items():
        cmd = [str(SSRD), "render", "--batch", str(FIXTURES / file), "--bundle", str(SERVER_BUNDLE),
               "--repeat", str(repeat_for[fixture])]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        stats = json.loads(p.stderr.strip().splitlines()[-1])
        rows.append({
            "fixture": fixture,
            "per_isolate_rps": stats["renders_per_s"],
            "mean_ms": stats["mean_ms"],
            "p99_ms": stats["p99_ms"],
            "workers": workers,
            "ceiling_rps": stats["renders_per_s"] * workers,
        })
        log(f"ceiling {fixture}: {stats['renders_per_s']:.1f} batches/s per isolate")
    return rows


def component_ceiling(repeat):
    """Raw renders/s of each component inside one isolate (no HTTP)."""
    batch = json.loads((FIXTURES / "batch-small.json").read_text())
    large = json.loads((FIXTURES / "batch-large.json").read_text())
    jobs = {j["name"]: j["data"] for j in list(batch.values()) + list(large.values())}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, props in jobs.items():
            path = Path(tmp) / f"{name}.json"
            path.write_text(json.dumps(props))
            n = max(50, repeat // 20) if name == "SearchResults" else repeat
            p = subprocess.run([str(SSRD), "render", name, str(path), "--bundle", str(SERVER_BUNDLE),
                                "--repeat", str(n)], capture_output=True, text=True, timeout=600)
            stats = json.loads(p.stderr.strip().splitlines()[-1])
            rows.append({"component": name, "renders_per_s": stats["renders_per_s"],
                         "mean_ms": stats["mean_ms"], "html_bytes": stats["output_bytes"]})
    return rows


# ----------------------------------------------------------- isolation -----

def isolation_runs(workers, quick):
    """`shared` vs `request` isolation: in-isolate renders/s (ssrd render
    --repeat, a fresh isolate per iteration for `request`) and end-to-end
    req/s (ab -c 13 against a tier in each mode), for both batches."""
    rows = []
    for mode in ("shared", "request"):
        for fixture, file in FIXTURE_FILES.items():
            if mode == "shared":
                repeat = {"small": 2000, "large": 150}[fixture]
            else:
                repeat = {"small": 200, "large": 50}[fixture]
            cmd = [str(SSRD), "render", "--batch", str(FIXTURES / file), "--bundle", str(SERVER_BUNDLE),
                   "--repeat", str(repeat), "--isolation", mode]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            stats = json.loads(p.stderr.strip().splitlines()[-1])
            rows.append({"mode": mode, "fixture": fixture, "per_isolate_rps": stats["renders_per_s"],
                         "mean_ms": stats["mean_ms"]})
        with Tier(workers, extra=["--isolation", mode]) as tier:
            for fixture, file in FIXTURE_FILES.items():
                n = {"small": 2000, "large": 300}[fixture] if quick else {"small": 5000, "large": 1000}[fixture]
                ab(tier.url(), FIXTURES / file, 4, 50, 120)
                r = ab(tier.url(), FIXTURES / file, 13, n, timeout=600)
                row = next(x for x in rows if x["mode"] == mode and x["fixture"] == fixture)
                row.update(e2e_rps=r.get("rps"), e2e_p50=r.get("p50"), e2e_p99=r.get("p99"),
                           e2e_failed=r.get("failed"))
        log(f"isolation {mode}: " + ", ".join(
            f"{x['fixture']} {x['per_isolate_rps']:.1f}/s in-isolate, {x.get('e2e_rps') or 0:.1f} req/s"
            for x in rows if x["mode"] == mode))
    return rows


# ------------------------------------------------------------- startup -----

def startup_runs(workers, quick):
    """Boot and memory, ssrd next to A18, over several fresh starts each
    (alternating): `ssrd up` → the supervisor's /health answering 200 and →
    its ready line; each worker's spawn → in rotation (the supervisor's
    `worker_in_rotation` boot_s) and its own boot (isolate from the
    snapshot, `ready` line boot_ms) and warm-up; the workers' RSS once idle;
    the RSS of every process of the setup after a load of large batches."""
    import a18
    starts = 3
    n = 200 if quick else 1000
    body = FIXTURES / FIXTURE_FILES["large"]
    rows = []
    for i in range(starts):
        tier = Tier(workers)
        health_url = f"http://127.0.0.1:{tier.base + 3}/health"
        health = {}
        done = threading.Event()

        def poll_health():
            while not done.is_set() and time.time() - t0 < 120:
                status, _ = get_text(health_url, timeout=1)
                if status == 200:
                    health["s"] = time.time() - t0
                    return
                time.sleep(0.002)

        t0 = time.time()
        poller = threading.Thread(target=poll_health, daemon=True)
        poller.start()
        with tier:
            ready_s = time.time() - t0
            poller.join(30)
            done.set()
            events = []
            for line in tier.log_lines():
                try:
                    events.append(json.loads(line))
                except ValueError:
                    pass
            in_rotation = [e["boot_s"] for e in events if e.get("event") == "worker_in_rotation"]
            ready = [e for e in events if e.get("event") == "ready"]
            time.sleep(1)
            workers_now = tier.worker_pids()
            idle = [a18.rss_bytes([pid]) for pid in workers_now]
            idle_anon = [a18.smaps_bytes([pid], "Anonymous") for pid in workers_now]
            idle_pss = [a18.smaps_bytes([pid], "Pss") for pid in workers_now]
            # A replacement on an idle box, as after a crash: spawn → in
            # rotation without `up`'s own start-up beside it.
            replaced = None
            if workers_now:
                before = tier.count_log("worker_in_rotation")
                os.kill(workers_now[0], signal.SIGKILL)
                deadline = time.time() + 10
                while time.time() < deadline and replaced is None:
                    time.sleep(0.05)
                    later = [json.loads(l) for l in tier.log_lines() if '"worker_in_rotation"' in l]
                    if len(later) > before:
                        replaced = later[-1]["boot_s"]
                time.sleep(0.5)
            ab(tier.url(), body, 4, 20, 120)
            r = ab(tier.url(), body, 13, n, timeout=max(120, n))
            pids = a18.tree_pids([tier.proc.pid])
            tier_rss, by_name = a18.rss_bytes(pids), a18.rss_by_name(pids)
            tier_pss = a18.smaps_bytes(pids, "Pss")
            nprocs = len(pids)
            time.sleep(AFTER_LOAD_IDLE_S)
            pids = a18.tree_pids([tier.proc.pid])
            tier_rss_idle = a18.rss_bytes(pids)
        rows.append({
            "system": "ssrd", "start": i, "health_ms": health.get("s", 0) * 1000 or None,
            "ready_ms": ready_s * 1000,
            "spawn_to_rotation_ms": statistics.median(in_rotation) * 1000 if in_rotation else None,
            "replacement_to_rotation_ms": replaced * 1000 if replaced is not None else None,
            "worker_boot_ms": statistics.median(e["boot_ms"] for e in ready) if ready else None,
            "worker_warmup_ms": statistics.median(e["warmup_ms"] for e in ready) if ready else None,
            "snapshot": ",".join(sorted({e.get("snapshot", "?") for e in ready})),
            "idle_worker_rss_mib": statistics.mean(idle) / 2**20 if idle else None,
            "idle_workers_rss_mib": sum(idle) / 2**20,
            "idle_worker_anon_mib": statistics.mean(idle_anon) / 2**20 if idle_anon else None,
            "idle_worker_pss_mib": statistics.mean(idle_pss) / 2**20 if idle_pss else None,
            "rss_after_load_mib": tier_rss / 2**20, "pss_after_load_mib": tier_pss / 2**20,
            "rss_after_load_idle_mib": tier_rss_idle / 2**20,
            "processes": nprocs, "rss_by_name": by_name,
            "load_rps": r.get("rps"), "load_failed": (r.get("failed") or 0) + (r.get("non2xx") or 0),
        })
        log(f"startup ssrd ({i + 1}): /health 200 after {fmt(rows[-1]['health_ms'])} ms, ready line "
            f"{ready_s * 1000:.0f} ms, idle worker {fmt(rows[-1]['idle_worker_rss_mib'])} MiB, after load "
            f"{tier_rss / 2**20:.0f} MiB in {nprocs} processes")

        t0 = time.time()
        with a18.A18(workers) as system:
            ready_s = time.time() - t0
            time.sleep(1)
            nodes = [p.pid for p in system.procs if p.args[0] == "node" and p.poll() is None]
            idle = [a18.rss_bytes([pid]) for pid in nodes]
            idle_anon = [a18.smaps_bytes([pid], "Anonymous") for pid in nodes]
            idle_pss = [a18.smaps_bytes([pid], "Pss") for pid in nodes]
            ab(system.url(), body, 4, 20, 120)
            r = ab(system.url(), body, 13, n, timeout=max(120, n))
            pids = system.pids()
            rss, by_name = a18.rss_bytes(pids), a18.rss_by_name(pids)
            pss = a18.smaps_bytes(pids, "Pss")
            time.sleep(AFTER_LOAD_IDLE_S)
            rss_idle = a18.rss_bytes(system.pids())
        rows.append({
            "system": "A18", "start": i, "ready_ms": ready_s * 1000, "health_ms": None,
            "idle_worker_rss_mib": statistics.mean(idle) / 2**20 if idle else None,
            "idle_workers_rss_mib": sum(idle) / 2**20,
            "idle_worker_anon_mib": statistics.mean(idle_anon) / 2**20 if idle_anon else None,
            "idle_worker_pss_mib": statistics.mean(idle_pss) / 2**20 if idle_pss else None,
            "rss_after_load_mib": rss / 2**20, "pss_after_load_mib": pss / 2**20,
            "rss_after_load_idle_mib": rss_idle / 2**20,
            "processes": len(pids), "rss_by_name": by_name,
            "load_rps": r.get("rps"), "load_failed": (r.get("failed") or 0) + (r.get("non2xx") or 0),
        })
        log(f"startup A18 ({i + 1}): answering after {ready_s * 1000:.0f} ms, idle worker "
            f"{fmt(rows[-1]['idle_worker_rss_mib'])} MiB, after load {rss / 2**20:.0f} MiB in {len(pids)} processes")
    return rows


# -------------------------------------------------------------- traces -----

class Collector:
    """An OTLP/HTTP trace receiver on loopback answering every POST with
    `status` (200, or 500 to play a broken collector); counts posts."""

    def __init__(self, status):
        import http.server

        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                collector.posts += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.posts = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def trace_runs(workers, quick):
    """Tracing's cost and a broken collector's, side by side: the small batch
    at c=13 with tracing off, exporting to a healthy collector, to one
    answering 500 and to none listening, in alternating rounds. Every
    request carries a caller's traceparent, as a traced Rails app sends."""
    healthy, failing = Collector(200), Collector(500)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    down_port = closed.getsockname()[1]
    closed.close()
    modes = {
        "off": None,
        "collector ok": f"http://127.0.0.1:{healthy.port}",
        "collector 500": f"http://127.0.0.1:{failing.port}",
        "collector down": f"http://127.0.0.1:{down_port}",
    }
    rounds = 2 if quick else 3
    n = 2000 if quick else 10000
    body = FIXTURES / FIXTURE_FILES["small"]
    header = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    rows = []
    try:
        for rnd in range(rounds):
            for mode, endpoint in modes.items():
                env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint} if endpoint else {}
                with Tier(workers, env=env) as tier:
                    ab(tier.url(), body, 4, 500, 120, headers=[header])
                    r = ab(tier.url(), body, 13, n, timeout=max(120, n), headers=[header])
                    failures = None
                    status, text = get_text(tier.metrics_url())
                    if status == 200:
                        m = re.search(r"^ssrd_trace_export_failures_total (\d+)", text, re.M)
                        failures = int(m.group(1)) if m else None
                r.update(mode=mode, round=rnd, export_failures=failures)
                rows.append(r)
                log(f"traces {mode} (round {rnd + 1}): {r.get('rps', 0):.0f} req/s, p99 {r.get('p99')} ms, "
                    f"failed {r.get('failed')}, export failures {failures}")
    finally:
        healthy.close()
        failing.close()
    log(f"traces: the healthy collector got {healthy.posts} posts, the failing one {failing.posts}")
    return rows


# --------------------------------------------------------------- chaos -----

class LoadGen:
    """Steady load from `concurrency` threads, one request per connection
    (like ab). Healthy requests must all succeed; requests that are faulty on
    purpose are counted on their own, with whether they got the expected
    answer."""

    def __init__(self, port, concurrency, body, faulty=None, faulty_share=0.0, follow_health=False):
        self.port, self.concurrency, self.body = port, concurrency, body
        # Behave like callers behind a load balancer that polls /health
        # every 100 ms: once it is not 200, send nothing more.
        self.follow_health = follow_health
        self.out_of_rotation = threading.Event()
        self.faulty, self.faulty_share = faulty, faulty_share
        self.stop_flag = threading.Event()
        # Set when the tier is being shut down: from then on a connection
        # refused, or reset before any response, was never accepted by nginx
        # (it closed its listener with the connection still in the kernel's
        # queue) and is counted as refused, not as a failed request.
        self.shutting_down = threading.Event()
        self.lock = threading.Lock()
        self.stats = {"healthy": 0, "healthy_failed": 0, "refused": 0, "faulty": 0, "faulty_unexpected": 0}
        self.samples = []
        self.threads = []
        # (seconds since start, latency ms) of every healthy answer, and the
        # moments chaos struck: p99 before the first event vs. the second
        # after each one is the latency cost of the event.
        self.started = time.time()
        self.latencies = []
        self.events = []

    def mark(self):
        """Records that a chaos event happens now."""
        with self.lock:
            self.events.append(time.time() - self.started)

    def p99(self, windows):
        with self.lock:
            xs = sorted(ms for t, ms in self.latencies if any(a <= t < b for a, b in windows))
        return xs[int(round((len(xs) - 1) * 0.99))] if xs else None

    def latency_cost(self):
        """p99 (ms) before the first event, and within 1 s after each event."""
        if not self.events:
            return {}
        before = self.p99([(0.5, self.events[0])])
        during = self.p99([(e, e + 1.0) for e in self.events])
        return {"p99_before_ms": before, "p99_during_ms": during}

    def _record(self, key, sample=None):
        with self.lock:
            self.stats[key] += 1
            if sample and len(self.samples) < 5:
                self.samples.append(sample)

    def _poll_health(self):
        while not self.stop_flag.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/health")
                ok = conn.getresponse().status == 200
                conn.close()
            except (OSError, http.client.HTTPException):
                ok = False
            if not ok:
                self.out_of_rotation.set()
                return
            time.sleep(0.1)

    def _loop(self, seed):
        rng = random.Random(seed)
        while not self.stop_flag.is_set():
            if self.out_of_rotation.is_set():
                time.sleep(0.01)
                continue
            faulty = self.faulty is not None and rng.random() < self.faulty_share
            body = self.faulty["body"] if faulty else self.body
            sent = time.time()
            status, data = post(self.port, "/batch", body, timeout=60)
            if not faulty:
                with self.lock:
                    self.latencies.append((sent - self.started, (time.time() - sent) * 1000.0))
            never_accepted = status is None and (
                b"ConnectionRefused" in data
                or (self.shutting_down.is_set() and (b"ConnectionReset" in data or b"BrokenPipe" in data))
            )
            if never_accepted:
                self._record("refused")
                time.sleep(0.01)
                continue
            if faulty:
                self._record("faulty")
                if not self.faulty["expect"](status, data):
                    self._record("faulty_unexpected", data[:200].decode(errors="replace"))
                continue
            self._record("healthy")
            if not healthy_ok(status, data):
                self._record("healthy_failed", f"{status}: {data[:200].decode(errors='replace')}")

    def __enter__(self):
        if self.follow_health:
            t = threading.Thread(target=self._poll_health, daemon=True)
            t.start()
            self.threads.append(t)
        for i in range(self.concurrency):
            t = threading.Thread(target=self._loop, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(90)


def all_failed_with(data, name):
    try:
        results = json.loads(data)["results"]
        return len(results) > 0 and all(r["error"]["name"] == name for r in results.values())
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def hold_idle(port, n):
    """Opens n connections that send nothing; returns them and the count
    that could not connect."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held, refused = [], 0
    for _ in range(min(n, hard - 2000)):
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            refused += 1
    return held, refused


def healthy_ok(status, data):
    if status != 200:
        return False
    try:
        results = json.loads(data)["results"]
        return all(r["success"] for r in results.values())
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def quarantined(status, data):
    """The tier refused a quarantined request (500, X-Ssrd-Error: Quarantined)."""
    return status == 500 and data.startswith(b"Quarantined:")


def job_error(data):
    try:
        return json.loads(data)["results"]["0"]["error"]["name"]
    except (ValueError, KeyError, TypeError):
        return None


def chaos_runs(workers, duration):
    healthy = (FIXTURES / "batch-small.json").read_bytes()
    runs = []

    def record(name, gen, note, extra=None, shutdown=False):
        # Outside a shutdown nothing may be refused: a refusal counts as a
        # failure there. During the SIGTERM run it is reported apart.
        row = {"run": name, **gen.stats, "note": note, "samples": gen.samples, "shutdown": shutdown,
               **gen.latency_cost()}
        row.update(extra or {})
        runs.append(row)
        log(f"chaos {name}: healthy {gen.stats['healthy']} failed {gen.stats['healthy_failed']} "
            f"faulty {gen.stats['faulty']} unexpected {gen.stats['faulty_unexpected']}")

    # 1. kill -9 of a random worker every second.
    with Tier(workers, FAULTS_BUNDLE, keep_log_as="chaos-kill.log") as tier, \
            LoadGen(tier.port, 20, healthy) as gen:
        kills = 0
        deadline = time.time() + duration
        while time.time() < deadline:
            time.sleep(1)
            pids = tier.worker_pids()
            if pids:
                gen.mark()
                os.kill(random.choice(pids), signal.SIGKILL)
                kills += 1
        time.sleep(1)
    record("kill -9 every second", gen, f"{kills} workers killed", {"kills": kills})

    # 2. Rolling reload twice.
    with Tier(workers, FAULTS_BUNDLE, keep_log_as="chaos-reload.log") as tier, \
            LoadGen(tier.port, 20, healthy) as gen:
        for _ in range(2):
            time.sleep(duration / 3)
            done = tier.count_log("reload_complete")
            gen.mark()
            tier.signal(signal.SIGHUP)
            deadline = time.time() + 120
            while tier.count_log("reload_complete") <= done and time.time() < deadline:
                time.sleep(0.1)
        time.sleep(duration / 3)
        reloads = tier.count_log("reload_complete")
    record("rolling reload (SIGHUP) x2", gen, f"{reloads} reloads completed", {"reloads": reloads})

    # 3. 1 % of requests to a component that never ends.
    # After three RenderTimeouts of the same content within a minute the tier
    # quarantines it (docs/operations.md): then it is refused at once.
    runaway = {"body": json.dumps({"0": {"name": "Runaway", "data": {}}}).encode(),
               "expect": lambda s, d: (s == 200 and job_error(d) == "RenderTimeout") or quarantined(s, d)}
    with Tier(workers, FAULTS_BUNDLE, extra=["--render-timeout-ms", "500"], keep_log_as="chaos-runaway.log") as tier, \
            LoadGen(tier.port, 20, healthy, runaway, 0.01) as gen:
        time.sleep(duration)
    record("1 % Runaway", gen, "faulty = Runaway jobs; expected: 200 with RenderTimeout, then 500 Quarantined")

    # 4. Leaks until workers recycle: 1 % of requests leak 2 MB each (tens
    # of MB/s at this load), against a 128 MB heap recycled at 50 %.
    leak = {"body": json.dumps({"0": {"name": "Leak", "data": {"mb": 2}}}).encode(),
            "expect": lambda s, d: s == 200 and job_error(d) in (None, "HeapLimitExceeded")}
    with Tier(workers, FAULTS_BUNDLE, extra=["--heap-limit-mb", "128", "--recycle-heap-percent", "50"],
              keep_log_as="chaos-leak.log") as tier, \
            LoadGen(tier.port, 20, healthy, leak, 0.01) as gen:
        time.sleep(duration)
        recycled = tier.count_log("worker_replacing") + tier.count_log(
            "worker_heap_limit_exit")
    record("Leak until recycled", gen, f"{recycled} workers recycled",
           {"recycled": recycled})

    # 5. Bad input fired during load.
    with Tier(workers, FAULTS_BUNDLE, keep_log_as="chaos-bad-input.log") as tier, \
            LoadGen(tier.port, 20, healthy) as gen:
        bad = bad_input(tier.port, duration)
    record("bad-input corpus", gen, "; ".join(f"{k}: {v}" for k, v in bad.items()), {"bad_input": bad})

    # 6. kill -9 of haproxy, three times.
    with Tier(workers, FAULTS_BUNDLE, keep_log_as="chaos-haproxy.log") as tier, \
            LoadGen(tier.port, 20, healthy) as gen:
        for _ in range(3):
            time.sleep(duration / 4)
            pid = tier.pid_of(f"{tier.run_dir}/haproxy.cfg")
            if pid:
                gen.mark()
                os.kill(pid, signal.SIGKILL)
        time.sleep(duration / 4)
        restarts = tier.count_log("aux_restarted")
    record("kill -9 haproxy x3", gen, f"{restarts} haproxy restarts", {"restarts": restarts})

    # 7. kill -9 of every worker at once, three times.
    with Tier(workers, FAULTS_BUNDLE, keep_log_as="chaos-all-workers.log") as tier, \
            LoadGen(tier.port, 20, healthy) as gen:
        for _ in range(3):
            time.sleep(duration / 4)
            gen.mark()
            for pid in tier.worker_pids():
                os.kill(pid, signal.SIGKILL)
        time.sleep(duration / 4)
    record("kill -9 every worker at once x3", gen, f"{3 * workers} workers killed")

    # 8. kill -9 of nginx's master, twice.
    with Tier(workers, FAULTS_BUNDLE, keep_log_as="chaos-nginx.log") as tier, \
            LoadGen(tier.port, 20, healthy) as gen:
        masters = 0
        for _ in range(2):
            time.sleep(duration / 3)
            try:
                master = int((tier.run_dir / "nginx.pid").read_text().strip())
                gen.mark()
                os.kill(master, signal.SIGKILL)
                masters += 1
            except (OSError, ValueError):
                pass
        time.sleep(duration / 3)
    record("kill -9 nginx master x2", gen, f"{masters} masters killed; the tether starts another, "
           "the old workers finish their requests")

    # 9. Batches of 1000 Runaway jobs (40 KB) against a 3 s request budget.
    thousand = json.dumps({str(i): {"name": "Runaway", "data": {}} for i in range(1000)}).encode()
    budget = {"body": thousand,
              "expect": lambda s, d: (s == 200 and all_failed_with(d, "RenderTimeout")) or quarantined(s, d)}
    with Tier(workers, FAULTS_BUNDLE, extra=["--request-budget-ms", "3000"],
              keep_log_as="chaos-budget.log") as tier, \
            LoadGen(tier.port, 20, healthy, budget, 0.002) as gen:
        time.sleep(duration)
    record("0.2 % batches of 1000 Runaway jobs", gen,
           "faulty = 1000-job Runaway batches; expected: 200 with every job RenderTimeout within the 3 s budget, "
           "then 500 Quarantined")

    # 10. A broken bundle is reloaded, then every worker dies.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bundle.js"
        shutil.copy(FAULTS_BUNDLE, path)
        with Tier(workers, path, keep_log_as="chaos-broken-reload.log") as tier, \
                LoadGen(tier.port, 20, healthy) as gen:
            time.sleep(duration / 4)
            path.write_text("this is not javascript {")
            tier.signal(signal.SIGHUP)
            deadline = time.time() + 60
            while tier.count_log("reload_rejected") == 0 and time.time() < deadline:
                time.sleep(0.1)
            for _ in range(2):
                time.sleep(duration / 4)
                gen.mark()
                for pid in tier.worker_pids():
                    os.kill(pid, signal.SIGKILL)
            time.sleep(duration / 4)
    record("broken reload, then kill -9 every worker x2", gen,
           "replacements start from the last bundle that passed its check")

    # 11. 10,000 idle connections held open during the load.
    with Tier(workers, FAULTS_BUNDLE, keep_log_as="chaos-idle.log") as tier, \
            LoadGen(tier.port, 20, healthy) as gen:
        time.sleep(duration / 3)
        gen.mark()
        held, refused = hold_idle(tier.port, 10_000)
        time.sleep(duration / 3)
        for c in held:
            c.close()
        time.sleep(duration / 3)
    record("10,000 idle connections", gen, f"{len(held)} held open, {refused} could not connect",
           {"idle_held": len(held)})

    # 12. The run dir is deleted, then a worker and haproxy are killed.
    with Tier(workers, FAULTS_BUNDLE, keep_log_as="chaos-run-dir.log") as tier, \
            LoadGen(tier.port, 20, healthy) as gen:
        time.sleep(duration / 4)
        gen.mark()
        shutil.rmtree(tier.run_dir, ignore_errors=True)
        time.sleep(duration / 4)
        pids = tier.worker_pids()
        if pids:
            gen.mark()
            os.kill(pids[0], signal.SIGKILL)
        time.sleep(duration / 4)
        pid = tier.pid_of(f"{tier.run_dir}/haproxy.cfg")
        if pid:
            gen.mark()
            os.kill(pid, signal.SIGKILL)
        time.sleep(duration / 4)
        recreated = tier.count_log("run_dir_recreated")
    record("run dir deleted, then kill -9 a worker and haproxy", gen,
           f"run dir recreated {recreated}×")

    # 13. SIGTERM at the end with requests in flight, callers following
    # /health (as behind a load balancer), a 2 s drain.
    with Tier(workers, FAULTS_BUNDLE, extra=("--drain-seconds", "2"),
              keep_log_as="chaos-sigterm.log") as tier:
        gen = LoadGen(tier.port, 20, healthy, follow_health=True)
        with gen:
            time.sleep(duration / 2)
            t0 = time.time()
            gen.shutting_down.set()
            tier.signal(signal.SIGTERM)
            try:
                code = tier.proc.wait(90)
            except subprocess.TimeoutExpired:
                code = None
            stop_s = time.time() - t0
            time.sleep(0.5)
    record("SIGTERM with requests in flight (2 s drain, callers follow /health)", gen,
           f"exit code {code}, stopped in {stop_s:.1f}s; refused or reset before nginx accepted them: "
           f"{gen.stats['refused']}",
           {"exit_code": code}, shutdown=True)
    return runs


def bad_input(port, duration):
    """Fires the bad-input corpus while the load runs; returns status counts."""
    corpus = {
        "malformed JSON": b'{"0": {"name": ',
        "10 MB body": b"{" + b" " * (10 * 1024 * 1024) + b"}",
        "invalid UTF-8": b'{"0":{"name":"\xff\xfe"}}',
        "deep nesting": b'{"0":{"name":' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
        "not an object or array": b"12",
    }
    counts = {}
    deadline = time.time() + duration
    while time.time() < deadline:
        for name, body in corpus.items():
            status, _ = post(port, "/batch", body, timeout=30)
            counts.setdefault(name, {})
            counts[name][str(status)] = counts[name].get(str(status), 0) + 1
        status = slowloris(port)
        counts.setdefault("slowloris", {})
        counts["slowloris"][status] = counts["slowloris"].get(status, 0) + 1
    return {k: ", ".join(f"{s}×{n}" for s, n in v.items()) for k, v in counts.items()}


def slowloris(port):
    """Sends headers and a trickle of body, then goes quiet: nginx must time
    it out on its own without any worker seeing it."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"POST /batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
            s.settimeout(20)
            data = s.recv(100)
            return data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "closed"
    except socket.timeout:
        return "still open after 20s"
    except OSError:
        return "reset"


# -------------------------------------------------------------- report -----

def machine():
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError):
        pass
    return {"cores": os.cpu_count(), "model": model, "memory": mem, "kernel": platform.release()}


def versions():
    def first_line(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not found"

    def npm_version(path):
        try:
            return json.loads(Path(path).read_text())["version"]
        except (OSError, ValueError, KeyError):
            return "?"

    return {
        "ssrd": first_line([str(SSRD), "--version"]),
        "nginx": first_line(["nginx", "-v"]),
        "haproxy": first_line(["haproxy", "-v"]),
        "node": first_line(["node", "--version"]),
        "hypernova": npm_version(BENCH / "hypernova/node_modules/hypernova/package.json"),
        "react": npm_version(ROOT / "js-bundle/node_modules/react/package.json"),
        "ab": first_line(["ab", "-V"]),
    }


def find(rows, system, fixture, c):
    for r in rows:
        if r.get("system") == system and r.get("fixture") == fixture and r.get("concurrency") == c:
            return r
    return {}


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def plots(name, load, chaos):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = {r["system"] for r in load}
    systems = [s for s in SYSTEMS if s in present] + sorted(present - set(SYSTEMS))
    files = {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, fixture in zip(axes, FIXTURE_FILES):
        for s in systems:
            for key, style in [("p50", "--"), ("p99", "-")]:
                ys = [find(load, s, fixture, c).get(key) for c in CONCURRENCY]
                ax.plot(CONCURRENCY, ys, style, marker="o", label=f"{s} {key}")
        ax.set_title(f"latency, {fixture} batch")
        ax.set_xlabel("concurrency (ab -c)")
        ax.set_ylabel("ms")
        ax.set_xticks(CONCURRENCY)
        ax.legend(fontsize=7)
    fig.tight_layout()
    files["latency"] = f"{name}-latency.png"
    fig.savefig(BENCH / "results" / files["latency"], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(1, len(systems))
    for ax, fixture in zip(axes, FIXTURE_FILES):
        for i, s in enumerate(systems):
            rows = [find(load, s, fixture, c) for c in CONCURRENCY]
            ys = [r.get("rps") or 0 for r in rows]
            # The range over the rounds, as error bars.
            err = [[y - (r.get("rps_min") or y) for y, r in zip(ys, rows)],
                   [(r.get("rps_max") or y) - y for y, r in zip(ys, rows)]]
            ax.bar([x + i * width for x in range(len(CONCURRENCY))], ys, width, label=s, yerr=err, capsize=2)
        ax.set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(CONCURRENCY))])
        ax.set_xticklabels([f"c={c}" for c in CONCURRENCY])
        ax.set_title(f"throughput, {fixture} batch (median, range over rounds)")
        ax.set_ylabel("requests/s")
        ax.legend(fontsize=7)
    fig.tight_layout()
    files["throughput"] = f"{name}-throughput.png"
    fig.savefig(BENCH / "results" / files["throughput"], dpi=110)
    plt.close(fig)

    if chaos:
        fig, ax = plt.subplots(figsize=(11, 4))
        labels = [r["run"] for r in chaos]
        xs = range(len(chaos))
        ax.bar([x - 0.2 for x in xs], [r["healthy"] for r in chaos], 0.4, label="healthy requests")
        ax.bar([x + 0.2 for x in xs], [failed_or_refused(r) for r in chaos], 0.4, label="failed or refused", color="crimson")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, rotation=15, fontsize=8)
        ax.set_yscale("symlog")
        ax.set_title("chaos runs under c=20: healthy requests and failures")
        ax.legend()
        fig.tight_layout()
        files["chaos"] = f"{name}-chaos.png"
        fig.savefig(BENCH / "results" / files["chaos"], dpi=110)
        plt.close(fig)
    return files


def fmt(x, nd=1):
    if x is None or x == "":
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def failed_or_refused(run):
    """Failed healthy requests, plus refusals unless the run was a shutdown."""
    return run["healthy_failed"] + (0 if run.get("shutdown") else run["refused"])


def startup_cell(rows, system, key, nd=1):
    xs = [r[key] for r in rows if r["system"] == system and r.get(key) is not None]
    if not xs:
        return "–"
    return range_str(statistics.median(xs), min(xs), max(xs), nd)


# How long after the startup section's load the setup's RSS is read again:
# an ssrd worker gives memory back once idle for 250 ms (render_loop.rs).
AFTER_LOAD_IDLE_S = 2.0


def startup_summary(rows):
    """The startup figures for the JSON: medians, with [min, max]."""
    out = {}
    if not rows:
        return out
    for system, tag in (("ssrd", "ssrd"), ("A18", "a18")):
        for key in ("health_ms", "ready_ms", "spawn_to_rotation_ms", "replacement_to_rotation_ms", "worker_boot_ms", "worker_warmup_ms",
                    "idle_worker_rss_mib", "idle_workers_rss_mib", "idle_worker_anon_mib",
                    "idle_worker_pss_mib", "rss_after_load_mib", "pss_after_load_mib",
                    "rss_after_load_idle_mib"):
            xs = [r[key] for r in rows if r["system"] == system and r.get(key) is not None]
            if xs:
                out[f"startup_{tag}_{key}"] = round(statistics.median(xs), 2)
                out[f"startup_{tag}_{key}_range"] = [round(min(xs), 2), round(max(xs), 2)]
    # ssrd's RSS after load / A18's, start by start (start i of each).
    xs = []
    for i in sorted({r["start"] for r in rows}):
        a = next((r["rss_after_load_mib"] for r in rows if r["system"] == "ssrd" and r["start"] == i), None)
        b = next((r["rss_after_load_mib"] for r in rows if r["system"] == "A18" and r["start"] == i), None)
        if a and b:
            xs.append(a / b)
    if xs:
        out["rss_ratio_a18_after_load"] = round(statistics.median(xs), 3)
        out["rss_ratio_a18_after_load_range"] = [round(min(xs), 3), round(max(xs), 3)]
    for key, tag in (("pss_after_load_mib", "pss_ratio_a18_after_load"),
                     ("rss_after_load_idle_mib", "rss_ratio_a18_after_load_idle")):
        xs = []
        for i in sorted({r["start"] for r in rows}):
            a = next((r.get(key) for r in rows if r["system"] == "ssrd" and r["start"] == i), None)
            b = next((r.get(key) for r in rows if r["system"] == "A18" and r["start"] == i), None)
            if a and b:
                xs.append(a / b)
        if xs:
            out[tag] = round(statistics.median(xs), 3)
            out[f"{tag}_range"] = [round(min(xs), 3), round(max(xs), 3)]
    return out


def startup_section(rows):
    out = ["## Startup and memory", ""]
    out.append("Fresh starts, ssrd and A18 alternating. ssrd: `ssrd up` started → its supervisor's /health "
               "(metrics port) answers 200, and → its ready line on stdout (every worker in rotation); a "
               "worker's spawn → in rotation (the supervisor's `worker_in_rotation` boot_s), its own boot "
               "(isolate from the snapshot, the `ready` line's boot_ms) and warm-up renders (warmup_ms); "
               "median over the workers of each start. A18: its Node servers started → the first 200 "
               "through nginx (after `ssrd config`, `nginx -t`, `haproxy -c`). RSS is VmRSS from /proc: a "
               "worker's once idle (1 s after ready), and the sum over every process of the setup (ssrd: "
               "the supervisor's process tree: supervisor, nginx master and worker, haproxy, workers; A18: "
               "nginx master and worker, haproxy, the Node servers) after ab -c 13 of large batches, and "
               f"again {AFTER_LOAD_IDLE_S:g} s later (idle: an ssrd worker gives memory back after "
               "250 ms without work). Pages shared between processes count in each process's RSS: "
               "an ssrd worker's RSS includes some 30 MiB of the ssrd binary's own pages (V8's code "
               "and data), which every worker shares. Anonymous memory (a process's own) and PSS "
               "(shared pages divided among the processes that map them; summed over a setup, its "
               "real footprint) are from /proc/PID/smaps_rollup. Median over the starts, (min–max).")
    out.append("")
    out.append("| figure | ssrd | A18 |")
    out.append("|---|---|---|")
    for key, label, nd in (("health_ms", "start → /health 200 (ms)", 0),
                           ("ready_ms", "start → ready line / first 200 through nginx (ms)", 0),
                           ("spawn_to_rotation_ms", "worker spawn → in rotation, during `up` (ms)", 0),
                           ("replacement_to_rotation_ms", "a killed worker's replacement: spawn → in rotation (ms)", 0),
                           ("worker_boot_ms", "worker boot: isolate from snapshot (ms)", 1),
                           ("worker_warmup_ms", "worker warm-up renders (ms)", 0),
                           ("idle_worker_rss_mib", "idle worker RSS, mean over workers (MiB)", 1),
                           ("idle_workers_rss_mib", "idle workers' RSS, sum (MiB)", 0),
                           ("idle_worker_anon_mib", "idle worker, anonymous memory only (MiB)", 1),
                           ("idle_worker_pss_mib", "idle worker PSS (MiB)", 1),
                           ("rss_after_load_mib", "every process's RSS after large-batch load (MiB)", 0),
                           ("pss_after_load_mib", "every process's PSS after large-batch load (MiB)", 0),
                           ("rss_after_load_idle_mib",
                            f"every process's RSS {AFTER_LOAD_IDLE_S:g} s after the load (MiB)", 0),
                           ("processes", "processes counted", 0),
                           ("load_rps", "the load's req/s (large, c=13)", 1),
                           ("load_failed", "the load's failed + non-2xx", 0)):
        out.append(f"| {label} | {startup_cell(rows, 'ssrd', key, nd)} | {startup_cell(rows, 'A18', key, nd)} |")
    out.append("")
    out.append(f"Snapshot: {', '.join(sorted({r.get('snapshot') for r in rows if r.get('snapshot')}))} "
               "(the workers' `ready` line).")
    out.append("")
    out.append("RSS after the load by process name (MiB, summed over processes of that name), each start:")
    out.append("")
    for r in rows:
        parts = ", ".join(f"{k} {v:.0f}" for k, v in (r.get("rss_by_name") or {}).items())
        out.append(f"- {r['system']}, start {r['start'] + 1}: {parts}")
    out.append("")
    return out


def range_str(med, lo, hi, nd=1):
    """`median (min–max)`, or the median alone when there is one value."""
    if med is None:
        return "–"
    if lo is None or hi is None or lo == hi:
        return fmt(float(med), nd)
    return f"{fmt(float(med), nd)} ({fmt(float(lo), nd)}–{fmt(float(hi), nd)})"


def write_report(name, args, data):
    rounds, ceil, comps, chaos = data["load"], data["ceiling"], data["components"], data["chaos"]
    load = aggregate(rounds)
    S = "ssrd"
    summary = {
        "name": name,
        "date": data["date"],
        "quick": args.quick,
        "workers": args.workers,
        "machine": data["machine"],
        "versions": data["versions"],
        "load_rounds": max((r.get("round", 0) + 1 for r in rounds if r["system"] in SYSTEMS), default=0),
    }
    for fixture in FIXTURE_FILES:
        s13 = find(load, S, fixture, 13)
        c = next((r for r in ceil if r["fixture"] == fixture), {})
        for other, tag in (("A18", "a18"), ("HN", "hn")):
            for key, conc, fig in (("rps", 13, "throughput_ratio"), ("p99", 20, "p99_ratio")):
                med, lo, hi = round_ratios(rounds, other, fixture, conc, key)
                summary[f"{fig}_{tag}_c{conc}_{fixture}"] = med
                summary[f"{fig}_{tag}_c{conc}_{fixture}_range"] = [lo, hi] if med is not None else None
        # The keys of earlier reports: the ratios to Hypernova (HN).
        summary[f"throughput_ratio_c13_{fixture}"] = summary[f"throughput_ratio_hn_c13_{fixture}"]
        summary[f"p99_ratio_c20_{fixture}"] = summary[f"p99_ratio_hn_c20_{fixture}"]
        summary[f"efficiency_c13_{fixture}"] = ratio(s13.get("rps"), c.get("ceiling_rps"))
    # Headline figures: the realistic heavy page.
    for key in ("throughput_ratio_a18_c13", "p99_ratio_a18_c20", "throughput_ratio_hn_c13", "p99_ratio_hn_c20",
                "throughput_ratio_c13", "p99_ratio_c20", "efficiency_c13"):
        summary[key] = summary[f"{key}_large"]
    summary["chaos_failed"] = sum(failed_or_refused(r) for r in chaos) if chaos else None
    summary["chaos_refused_in_shutdown"] = sum(r["refused"] for r in chaos if r.get("shutdown")) if chaos else None
    summary["chaos_total"] = sum(r["healthy"] for r in chaos) if chaos else None
    summary["chaos_faulty"] = sum(r["faulty"] for r in chaos) if chaos else None
    summary["chaos_faulty_unexpected"] = sum(r["faulty_unexpected"] for r in chaos) if chaos else None
    first_vs_rr = ratio(find(load, "ssrd (static-rr)", "large", 13).get("p50"), find(load, S, "large", 13).get("p50"))
    summary["static_rr_vs_first_p50_c13_large"] = first_vs_rr
    startup = data.get("startup") or []
    startup_figs = startup_summary(startup)
    summary.update({k: v for k, v in startup_figs.items()})
    summary["settle_waits"], summary["settle_seconds"] = SETTLE["waits"], round(SETTLE["seconds"])
    vs_node = data.get("vs_node") or []
    if vs_node:
        import isolate_vs_node
        for page, s in isolate_vs_node.summary(vs_node).items():
            key = "isolate_vs_node_" + page.replace(" ", "_")
            summary[key], summary[f"{key}_range"] = s["ratio"], s["ratio_range"]

    m, v = data["machine"], data["versions"]
    out = [f"# ssrd benchmark: {name}", ""]
    out.append(f"{data['date']} · {'quick' if args.quick else 'full'} run · {args.workers} workers per system · "
               f"{m['cores']} cores ({m['model']}), {m['memory']}, Linux {m['kernel']}")
    out.append("")
    out.append(f"Runs that waited for the box's TIME_WAIT sockets first (`settle_tcp`): {SETTLE['waits']}, "
               f"{SETTLE['seconds']:.0f} s in all.")
    out.append("")
    out.append("## Summary")
    out.append("")
    if load:
        out.append(f"Load: median over {summary['load_rounds']} alternating rounds, (min–max) over the rounds. "
                   "Ratios: ssrd's run divided by the other system's run of the same round, median "
                   "(min–max) of those per-round ratios. A18 = Hypernova behind the same nginx and haproxy "
                   "as ssrd (the anchor); HN = Hypernova's own Node cluster.")
        out.append("")
    if load or vs_node or startup or chaos:
        out.append("| figure | ssrd | A18 | HN | ssrd / A18 | ssrd / HN | target |")
        out.append("|---|---|---|---|---|---|---|")
        for fixture in FIXTURE_FILES if load else ():
            for key, conc, fig, label, nd, target in (
                    # Issue 19's targets, against A18.
                    ("rps", 13, "throughput_ratio", "throughput", 1,
                     "≥ 2.5× A18" if fixture == "small" else "≥ 2.0× A18"),
                    ("p99", 20, "p99_ratio", "p99 latency", 0, "≤ 0.5× A18")):
                cells = []
                for system in SYSTEMS:
                    r = find(load, system, fixture, conc)
                    cells.append(range_str(r.get(key), r.get(f"{key}_min"), r.get(f"{key}_max"), nd))
                ratios = []
                for tag in ("a18", "hn"):
                    med = summary[f"{fig}_{tag}_c{conc}_{fixture}"]
                    lo, hi = summary[f"{fig}_{tag}_c{conc}_{fixture}_range"] or (None, None)
                    ratios.append(range_str(med, lo, hi, 2) + ("×" if med is not None else ""))
                unit = "req/s" if key == "rps" else "ms"
                out.append(f"| {label}, {fixture} batch, c={conc} ({unit}) | {' | '.join(cells)} | "
                           f"{' | '.join(ratios)} | {target} |")
    for fixture in FIXTURE_FILES:
        if summary[f"efficiency_c13_{fixture}"] is not None:
            out.append(f"| efficiency, {fixture} batch, c=13 (e2e median / in-isolate ceiling) | "
                       f"{fmt(summary[f'efficiency_c13_{fixture}'], 2)} | | | | | "
                       f"{'≥ 0.4' if fixture == 'small' else '≥ 0.85'} |")
    if vs_node:
        for page, s in isolate_vs_node.summary(vs_node).items():
            lo, hi = s["ratio_range"] or (None, None)
            out.append(f"| one isolate against Node, {page} (batches/s; ratio in the ssrd / A18 column) | "
                       f"{fmt(s['ssrd'])} | {fmt(s['Node'])} (Node) | | "
                       f"{range_str(s['ratio'], lo, hi, 2)}× | | ≥ 1.3× |")
    if startup:
        out.append(f"| `ssrd up` → /health 200 (ms) | {startup_cell(startup, 'ssrd', 'health_ms', 0)} | | | | | ≤ 200 |")
        out.append(f"| worker spawn → in rotation, snapshot: a killed worker's replacement (ms) | "
                   f"{startup_cell(startup, 'ssrd', 'replacement_to_rotation_ms', 0)} | | | | | ≤ 30 |")
        out.append(f"| the same for the first workers, during `up` (ms) | "
                   f"{startup_cell(startup, 'ssrd', 'spawn_to_rotation_ms', 0)} | | | | | |")
        out.append(f"| idle worker RSS (MiB) | {startup_cell(startup, 'ssrd', 'idle_worker_rss_mib')} | "
                   f"{startup_cell(startup, 'A18', 'idle_worker_rss_mib')} | | | | ≤ 40 |")
        lo, hi = startup_figs.get("rss_ratio_a18_after_load_range") or (None, None)
        out.append(f"| RSS of the whole setup after large-batch load (MiB) | "
                   f"{startup_cell(startup, 'ssrd', 'rss_after_load_mib', 0)} | "
                   f"{startup_cell(startup, 'A18', 'rss_after_load_mib', 0)} | | "
                   f"{range_str(startup_figs.get('rss_ratio_a18_after_load'), lo, hi, 2)}× | | ≤ 0.5× |")
        for key, tag, label in (("pss_after_load_mib", "pss_ratio_a18_after_load",
                                 "PSS of the whole setup after large-batch load (MiB)"),
                                ("rss_after_load_idle_mib", "rss_ratio_a18_after_load_idle",
                                 f"RSS of the whole setup {AFTER_LOAD_IDLE_S:g} s after that load (MiB)")):
            lo, hi = startup_figs.get(f"{tag}_range") or (None, None)
            out.append(f"| {label} | {startup_cell(startup, 'ssrd', key, 0)} | "
                       f"{startup_cell(startup, 'A18', key, 0)} | | "
                       f"{range_str(startup_figs.get(tag), lo, hi, 2)}× | | (≤ 0.5×) |")
    if chaos:
        out.append(f"| chaos: failed or refused / healthy requests (refusals outside shutdown) | "
                   f"{summary['chaos_failed']} / {summary['chaos_total']} | | | | | 0 |")
        out.append(f"| chaos: faulty requests with an unexpected answer | "
                   f"{summary['chaos_faulty_unexpected']} / {summary['chaos_faulty']} | | | | | 0 |")
    out.append("")
    out.append("Plots: " + ", ".join(f"[{k}]({f})" for k, f in data["plots"].items()))
    out.append("")
    for k, f in data["plots"].items():
        out.append(f"![{k}]({f})")
    out.append("")
    if load:
        out.append("## Load (ab -l -r -c C -n N, POST /batch)")
        out.append("")
        out.append("Each system serves the same components with the same number of worker processes; every "
                   "request is a fresh connection, as ab sends them. `ssrd` is the whole tier (nginx → haproxy → "
                   "workers); `A18` is Hypernova 2.5.0, one single-process Node server per slot, behind the "
                   "nginx and haproxy configs `ssrd config` prints (bench/a18.py); `HN` is Hypernova 2.5.0 on "
                   "Node's cluster. The systems ran in alternating rounds, each round starting each system "
                   "afresh; figures are the median over the rounds with (min–max); failed and non-2xx are "
                   "summed over the rounds.")
        out.append("")
        out.append("| system | batch | c | rounds × n | req/s | mean ms | p50 | p90 | p99 | max | failed | non-2xx |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in load:
            out.append(f"| {r['system']} | {r['fixture']} | {r['concurrency']} | {r['rounds']} × {r.get('requests')} | "
                       f"{range_str(r.get('rps'), r.get('rps_min'), r.get('rps_max'))} | {fmt(r.get('mean_ms'))} | "
                       f"{fmt(r.get('p50'), 0)} | {fmt(r.get('p90'), 0)} | "
                       f"{range_str(r.get('p99'), r.get('p99_min'), r.get('p99_max'), 0)} | "
                       f"{fmt(r.get('max'), 0)} | {fmt(r.get('failed'), 0)} | {fmt(r.get('non2xx'), 0)} |")
        out.append("")
    if startup:
        out += startup_section(startup)
    if ceil or comps:
        out.append("## Ceiling (renders inside one isolate, no HTTP)")
        out.append("")
        out.append("`ssrd render --batch FILE --repeat N`: the worker's own render thread and job loop (body "
                   "parsed and answer written per request, no HTTP) on one core, times the "
                   "worker count: what the box could do if rendering were the only work. Efficiency = "
                   "end-to-end throughput / this ceiling.")
        out.append("")
        out.append("| batch | per isolate (batches/s) | mean ms | p99 ms | × workers = ceiling (req/s) |")
        out.append("|---|---|---|---|---|")
        for r in ceil:
            out.append(f"| {r['fixture']} | {fmt(r['per_isolate_rps'])} | {fmt(r['mean_ms'], 2)} | {fmt(r['p99_ms'], 2)} | "
                       f"{fmt(r['ceiling_rps'])} |")
        out.append("")
        out.append("| component | renders/s in one isolate | mean ms | HTML bytes |")
        out.append("|---|---|---|---|")
        for r in comps:
            out.append(f"| {r['component']} | {fmt(r['renders_per_s'])} | {fmt(r['mean_ms'], 3)} | {r['html_bytes']} |")
        out.append("")
    if vs_node:
        out += isolate_vs_node.report(vs_node, data["versions"].get("node", "?"))
    iso = data.get("isolation") or []
    if iso:
        out.append("## Isolation: `shared` vs `request`")
        out.append("")
        out.append("In-isolate renders/s (`ssrd render --repeat`; under `request` a fresh isolate is started "
                   "from the snapshot before every iteration, as a worker does after every request) and "
                   "end-to-end throughput of a tier in each mode (ab -c 13).")
        out.append("")
        out.append("| batch | mode | in-isolate (batches/s) | mean ms | tier req/s | p50 ms | p99 ms | failed |")
        out.append("|---|---|---|---|---|---|---|---|")
        for r in sorted(iso, key=lambda x: (x["fixture"], x["mode"] != "shared")):
            out.append(f"| {r['fixture']} | {r['mode']} | {fmt(r['per_isolate_rps'])} | {fmt(r['mean_ms'], 2)} | "
                       f"{fmt(r.get('e2e_rps'))} | {fmt(r.get('e2e_p50'), 0)} | {fmt(r.get('e2e_p99'), 0)} | "
                       f"{fmt(r.get('e2e_failed'), 0)} |")
        for fixture in FIXTURE_FILES:
            sh = next((r for r in iso if r["mode"] == "shared" and r["fixture"] == fixture), None)
            rq = next((r for r in iso if r["mode"] == "request" and r["fixture"] == fixture), None)
            if sh and rq and sh.get("e2e_rps") and rq.get("e2e_rps"):
                summary[f"request_isolation_cost_{fixture}"] = round(1 - rq["e2e_rps"] / sh["e2e_rps"], 3)
                summary[f"request_isolation_ms_{fixture}"] = round(rq["mean_ms"] - sh["mean_ms"], 2)
        out.append("")
    traces = data.get("traces") or []
    if traces:
        out.append("## Traces: tracing's cost and a broken collector's")
        out.append("")
        out.append("Small batch, ab -c 13, every request with a caller's `traceparent`; tracing off, "
                   "exporting to a healthy OTLP/HTTP collector, to one answering 500, and to none "
                   "listening, in alternating rounds (each round a fresh tier). Median of the rounds, "
                   "with the range.")
        out.append("")
        out.append("| mode | req/s (median, range) | p99 ms (median, range) | failed | export failures |")
        out.append("|---|---|---|---|---|")
        for mode in dict.fromkeys(r["mode"] for r in traces):
            rs = [r for r in traces if r["mode"] == mode]
            rps = sorted(r.get("rps") or 0 for r in rs)
            p99 = sorted(r.get("p99") or 0 for r in rs)
            med = lambda xs: xs[len(xs) // 2]
            out.append(f"| {mode} | {fmt(med(rps), 0)} ({fmt(rps[0], 0)}–{fmt(rps[-1], 0)}) | "
                       f"{fmt(med(p99), 0)} ({fmt(p99[0], 0)}–{fmt(p99[-1], 0)}) | "
                       f"{sum(int(r.get('failed') or 0) + int(r.get('non2xx') or 0) for r in rs)} | "
                       f"{', '.join(str(r.get('export_failures')) for r in rs)} |")
            summary[f"traces_rps_{mode.replace(' ', '_')}"] = med(rps)
            summary[f"traces_p99_{mode.replace(' ', '_')}"] = med(p99)
        out.append("")
    if chaos:
        out.append("## Chaos (each under c=20 load of healthy small batches)")
        out.append("")
        out.append("Healthy requests must all succeed (HTTP 200, every job rendered). Faulty requests "
                   "(Runaway, Leak) are counted apart: their expected answer is a failed job "
                   "(RenderTimeout / HeapLimitExceeded), not a failed request. Refused = connections "
                   "refused, or (during a shutdown) reset before any response. Outside a shutdown a "
                   "refusal is a failure and counts in `chaos_failed`; during the SIGTERM run nginx "
                   "closes its listener first (see bench/README.md), so refusals there are reported "
                   "apart.")
        out.append("")
        out.append("p99 before = healthy requests sent before the first event; p99 during = those sent "
                   "within 1 s after any event: the latency cost of the event.")
        out.append("")
        out.append("| run | healthy | failed | refused | faulty | faulty, unexpected answer | p99 before (ms) | "
                   "p99 during (ms) | what happened |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for r in chaos:
            refused = f"{r['refused']} (shutdown)" if r.get("shutdown") else str(r["refused"])
            out.append(f"| {r['run']} | {r['healthy']} | {r['healthy_failed']} | {refused} | {r['faulty']} | "
                       f"{r['faulty_unexpected']} | {fmt(r.get('p99_before_ms'), 0)} | "
                       f"{fmt(r.get('p99_during_ms'), 0)} | {r['note']} |")
        out.append("")
        samples = [s for r in chaos for s in r["samples"]]
        if samples:
            out.append("First failures seen: " + " · ".join(f"`{s[:120]}`" for s in samples[:5]))
            out.append("")
    out.append("## Versions")
    out.append("")
    for k, val in v.items():
        out.append(f"- {k}: {val}")
    out.append("")
    out.append(f"Reproduce: `bench/run{' --quick' if args.quick else ''} --name {name}` (see bench/README.md).")
    out.append("")
    (BENCH / "results" / f"{name}.md").write_text("\n".join(out))
    (BENCH / "results" / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# ---------------------------------------------------------------- main -----

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer requests and shorter chaos runs (< 10 min)")
    ap.add_argument("--name", default=None, help="report name (default: date, plus -quick)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="workers per system (default: cores)")
    ap.add_argument("--sections", default="load,peer,ceiling,isolation,startup,traces,cache,chaos",
                    help="comma-separated subset of load,peer,ceiling,isolation,startup,traces,cache,chaos "
                         "(cache: the render cache, bench/cache_bench.py)")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    name = args.name or (datetime.date.today().isoformat() + ("-quick" if args.quick else ""))
    (BENCH / "results").mkdir(exist_ok=True)
    # Per ab run; each runs once per round (3 rounds, 2 with --quick).
    n_for = {"small": 2000, "large": 400} if args.quick else {"small": 5000, "large": 2000}
    warm = 100 if args.quick else 500
    started = time.time()
    data = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "machine": machine(),
            "versions": versions(), "load": [], "ceiling": [], "components": [], "chaos": [],
            "isolation": [], "traces": [], "startup": [], "vs_node": []}
    if "load" in sections:
        data["load"] += load_rounds(args.workers, n_for, warm, 2 if args.quick else 3)
    if "peer" in sections:
        with Tier(args.workers, balance="static-rr") as tier:
            data["load"] += load_runs("ssrd (static-rr)", tier.url(), n_for, warm)
    if "ceiling" in sections:
        data["ceiling"] = ceiling(args.workers, {"small": 2000 if args.quick else 10000,
                                                 "large": 200 if args.quick else 1000})
        data["components"] = component_ceiling(2000 if args.quick else 10000)
        import isolate_vs_node
        data["vs_node"] = isolate_vs_node.runs(2 if args.quick else 3, args.quick)
    if "isolation" in sections:
        data["isolation"] = isolation_runs(args.workers, args.quick)
    if "startup" in sections:
        data["startup"] = startup_runs(args.workers, args.quick)
    if "traces" in sections:
        data["traces"] = trace_runs(args.workers, args.quick)
    if "chaos" in sections:
        data["chaos"] = chaos_runs(args.workers, 8 if args.quick else 30)
    if "cache" in sections:
        import cache_bench
        data["cache"] = cache_bench.cache_runs(args.workers, args.quick, sys.modules[__name__])
    data["plots"] = plots(name, aggregate(data["load"]), data["chaos"]) if data["load"] else {}
    summary = write_report(name, args, data)
    if data.get("cache"):
        cache_bench.append_report(BENCH / "results" / name, data["cache"])
    log(f"done in {time.time() - started:.0f}s: bench/results/{name}.md")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
