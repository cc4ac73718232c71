"""A18: the Airbnb-2018 setup, as the anchor of the benchmark.

Hypernova 2.5.0 run as N single-process Node servers (one per slot, each on
its own port: worker_base_port + i - 1, as ssrd's workers), behind the very
nginx and haproxy configs `ssrd config` prints, made to run without ssrd's
supervisor by a few textual changes (SUBSTITUTIONS). Each substitution must
match exactly as often as expected, or A18 refuses to start: a change to
ssrd's config templates either carries over to A18 or breaks it loudly,
never silently.

Used by bench.py (load rounds, startup figures); loopback only; every
process it starts is stopped on exit.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import bench as B

# What `ssrd config` prints that only works under ssrd's supervisor, and
# what A18 runs instead. (file, pattern, replacement, expected matches;
# "workers" = one per worker.) Nothing else changes: nginx's `listen` line
# already names the port (ssrd hands nginx that socket through the NGINX
# environment variable; without it nginx binds the port itself).
SUBSTITUTIONS = [
    # haproxy's frontend socket is the supervisor's, inherited as fd 3.
    ("haproxy.cfg", r"^(\s*)bind fd@3\s*$", r"\1bind 127.0.0.1:{haproxy_port}", 1),
    # The runtime API is a socket pair whose other end only the supervisor
    # holds; A18 has no supervisor, so no runtime API (the stats page on
    # stats_port stays, and is how A18 checks haproxy routes its requests).
    ("haproxy.cfg", r"^\s*stats socket sockpair@4 level admin\s*\n", "", 1),
    # Workers start in MAINT until the supervisor sets each READY; A18's
    # Node servers are started and answering before haproxy starts.
    ("haproxy.cfg", r"^(\s*server w\d+ 127\.0\.0\.1:\d+ maxconn 1) disabled\s*$", r"\1", "workers"),
]

# Lines that must be there unchanged for A18 to be the same setup.
REQUIRED = [
    ("nginx.conf", r"^\s*listen 127\.0\.0\.1:{port}\b"),
    ("nginx.conf", r"^\s*daemon off;"),
    ("nginx.conf", r"^\s*server 127\.0\.0\.1:{haproxy_port}\b"),
    ("haproxy.cfg", r"^\s*balance first\s*$"),
]

HYPERNOVA_SERVER = B.BENCH / "hypernova" / "server.js"


def ssrd_configs(workers, ports, run_dir):
    """The nginx and haproxy configs `ssrd config` prints for these ports,
    as {file name: text}."""
    cmd = [str(B.SSRD), "config", "--workers", str(workers), "--port", str(ports["port"]),
           "--haproxy-port", str(ports["haproxy_port"]), "--stats-port", str(ports["stats_port"]),
           "--metrics-port", str(ports["metrics_port"]), "--worker-base-port", str(ports["worker_base_port"]),
           "--run-dir", str(run_dir), "--access-log", "false"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    files = {}
    for m in re.finditer(r"^# ---- (\S+) ----\n(.*?)(?=^# ---- |\Z)", out, re.S | re.M):
        files[Path(m.group(1)).name] = m.group(2)
    if set(files) != {"nginx.conf", "haproxy.cfg"}:
        raise RuntimeError(f"A18: `ssrd config` printed {sorted(files)}, not nginx.conf and haproxy.cfg")
    return files


def standalone_configs(workers, ports, run_dir):
    """ssrd's configs with SUBSTITUTIONS applied; raises when a pattern
    matches another number of times than expected."""
    files = ssrd_configs(workers, ports, run_dir)
    for name, pattern in REQUIRED:
        if not re.search(pattern.format(**ports), files[name], re.M):
            raise RuntimeError(f"A18: {name} from `ssrd config` has no line matching {pattern!r}: "
                               f"bench/a18.py needs updating")
    for name, pattern, repl, expected in SUBSTITUTIONS:
        expected = workers if expected == "workers" else expected
        text, n = re.subn(pattern, repl.format(**ports), files[name], flags=re.M)
        if n != expected:
            raise RuntimeError(f"A18: {pattern!r} matched {n} times in {name} from `ssrd config`, "
                               f"expected {expected}: bench/a18.py needs updating")
        files[name] = text
    # Nothing that needs the supervisor may be left (comments aside).
    config_lines = [ln for ln in files["haproxy.cfg"].splitlines() if not ln.lstrip().startswith("#")]
    for leftover in ("fd@", "sockpair@", " disabled"):
        if any(leftover in ln for ln in config_lines):
            raise RuntimeError(f"A18: haproxy.cfg still has {leftover!r} after the substitutions")
    return files


def tree_pids(roots):
    """The pids of roots and all their descendants that are alive."""
    children = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(d.name))
    out, todo = [], [r for r in roots if r and Path(f"/proc/{r}").exists()]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def rss_bytes(pids):
    """Sum of VmRSS over pids (each process's resident set; pages shared
    between processes, like nginx's master and worker, count in each)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return total


def smaps_bytes(pids, field):
    """Sum of one /proc/PID/smaps_rollup field over pids: `Pss` (each shared
    page divided among the processes mapping it, so the sum over a whole
    setup is its real footprint) or `Anonymous` (memory of its own: heaps,
    stacks; not the program's file pages)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return total


def rss_by_name(pids):
    """VmRSS summed per process name (/proc/PID/comm; for ssrd with its
    subcommand: `ssrd up`, `ssrd worker`, ...), MiB, largest first."""
    out = {}
    for pid in pids:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if comm == "ssrd":
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                comm += f" {argv[1].decode(errors='replace')}" if len(argv) > 1 else ""
        except OSError:
            continue
        out[comm] = out.get(comm, 0) + rss_bytes([pid]) / 2**20
    return dict(sorted(((k, round(v, 1)) for k, v in out.items()), key=lambda kv: -kv[1]))


class A18:
    """nginx → haproxy (maxconn 1 per server) → N single-process Hypernova
    servers, from `ssrd config`; stopped on exit."""

    def __init__(self, workers):
        self.workers = workers
        base = B.free_block(workers + 4)
        self.ports = {"port": base, "haproxy_port": base + 1, "stats_port": base + 2,
                      "metrics_port": base + 3, "worker_base_port": base + 4}
        self.port = base
        self.run_dir = Path(tempfile.mkdtemp(prefix="a18-bench-"))
        self.procs = []
        # Each process's stdout and stderr, in the run dir (quoted when it
        # exits before it answers).
        self.logs = {}
        self.started = None
        self.ready_s = None

    def url(self, path="/batch"):
        return f"http://127.0.0.1:{self.port}{path}"

    def _spawn(self, cmd, env, log_name):
        path = self.run_dir / log_name
        with open(path, "w") as out:
            p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        self.logs[p.pid] = path
        return p

    def _wait_200(self, port, what, timeout=60):
        body = (B.FIXTURES / B.FIXTURE_FILES["small"]).read_bytes()
        deadline = time.time() + timeout
        while time.time() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"A18: {' '.join(map(str, p.args))[:120]} exited with {p.returncode}: "
                                       f"{self.logs[p.pid].read_text()[-1500:]}")
            status, _ = B.post(port, "/batch", body, timeout=5)
            if status == 200:
                return
            time.sleep(0.01)
        raise RuntimeError(f"A18: {what} did not answer /batch with 200 within {timeout}s")

    def __enter__(self):
        try:
            return self._start()
        except BaseException:
            self.__exit__()
            raise

    def _start(self):
        files = standalone_configs(self.workers, self.ports, self.run_dir)
        for name, text in files.items():
            (self.run_dir / name).write_text(text)
        # The temp paths nginx insists on (ssrd's supervisor makes them).
        for path in re.findall(r"^\s*\w+_temp_path\s+(\S+);", files["nginx.conf"], re.M):
            Path(path).mkdir(parents=True, exist_ok=True)
        nginx_args = ["-p", str(self.run_dir), "-c", str(self.run_dir / "nginx.conf"),
                      "-e", str(self.run_dir / "nginx-error.log")]
        haproxy_args = ["-f", str(self.run_dir / "haproxy.cfg")]
        for cmd in (["nginx", "-t", "-q", *nginx_args], ["haproxy", "-c", "-q", *haproxy_args]):
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            if p.returncode != 0:
                raise RuntimeError(f"A18: `{' '.join(cmd)}` refused the config: {(p.stderr or p.stdout)[-1000:]}")
        self.started = time.time()
        env = dict(os.environ, SINGLE_PROCESS="1", NODE_ENV="production")
        for i in range(self.workers):
            port = self.ports["worker_base_port"] + i
            self._spawn(["node", str(HYPERNOVA_SERVER)], dict(env, PORT=str(port)), f"hypernova-{i + 1}.log")
        for i in range(self.workers):
            self._wait_200(self.ports["worker_base_port"] + i, f"hypernova worker {i + 1}")
        # As the tier does: haproxy in the foreground (-db), nginx with
        # `daemon off`, both children of this process.
        self._spawn(["haproxy", "-db", *haproxy_args], None, "haproxy.log")
        self._spawn(["nginx", *nginx_args], None, "nginx.log")
        self._wait_200(self.port, "nginx → haproxy → hypernova")
        self.ready_s = time.time() - self.started
        self.check_path()
        return self

    def haproxy_sessions(self):
        """Total sessions haproxy sent to each worker (its stats page, CSV)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['stats_port']}/;csv", timeout=5) as r:
            rows = r.read().decode().splitlines()
        head = rows[0].lstrip("# ").split(",")
        out = {}
        for row in rows[1:]:
            f = dict(zip(head, row.split(",")))
            if f.get("pxname") == "workers" and f.get("svname", "").startswith("w"):
                out[f["svname"]] = int(f.get("stot") or 0)
        return out

    def check_path(self):
        """Proof that requests to the port go nginx → haproxy → Hypernova:
        nginx's Server header and Express's X-Powered-By on the answer, and
        haproxy's count of sessions to the workers going up by one."""
        before = sum(self.haproxy_sessions().values())
        body = (B.FIXTURES / B.FIXTURE_FILES["small"]).read_bytes()
        req = urllib.request.Request(self.url(), data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            server, powered, status = r.headers.get("Server"), r.headers.get("X-Powered-By"), r.status
            r.read()
        after = sum(self.haproxy_sessions().values())
        if status != 200 or server != "nginx" or powered != "Express" or after != before + 1:
            raise RuntimeError(f"A18: a request did not go nginx → haproxy → Hypernova (status {status}, "
                               f"Server {server}, X-Powered-By {powered}, haproxy sessions {before} → {after})")

    def pids(self):
        """Every process of the setup: nginx (master and worker), haproxy,
        the Node servers."""
        return tree_pids([p.pid for p in self.procs if p.poll() is None])

    def __exit__(self, *exc):
        # nginx first (it stops accepting), then haproxy, then the workers.
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(15)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                        p.wait(5)
                    except (ProcessLookupError, subprocess.TimeoutExpired):
                        pass
        for port in [self.port, self.ports["haproxy_port"]] + \
                [self.ports["worker_base_port"] + i for i in range(self.workers)]:
            B.wait_port_closed(port, timeout=5)
        shutil.rmtree(self.run_dir, ignore_errors=True)
