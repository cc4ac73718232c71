#!/usr/bin/env python3
"""CPU time per request, by process, during one `ab` run against a tier.

    bench/cpu_per_request.py PORT N NAME=PID[,PID...] ...

Runs `ab -l -r -c 13 -n N` of the small batch (or $BODY) against
127.0.0.1:PORT/batch and prints, for each named group of processes, the CPU
time (user + system, from /proc/PID/stat, all threads) it spent per
request, and ab's own. Unlike req/s, these figures barely move when other
work shares the box, so a change to the request path can be judged on a
busy machine. bench/README.md, "Where a small request's CPU goes", has the
figures it gave.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

BODY = os.environ.get("BODY", str(Path(__file__).parent / "fixtures" / "batch-small.json"))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main():
    port, n = sys.argv[1], int(sys.argv[2])
    groups = {}
    for arg in sys.argv[3:]:
        name, pids = arg.split("=")
        groups[name] = [int(p) for p in pids.split(",")]
    before = {k: sum(map(cpu_seconds, v)) for k, v in groups.items()}
    t0 = os.times()
    out = subprocess.run(
        ["ab", "-l", "-r", "-c", "13", "-n", str(n), "-T", "application/json", "-p", BODY,
         f"http://127.0.0.1:{port}/batch"],
        capture_output=True, text=True, timeout=600).stdout
    t1 = os.times()
    after = {k: sum(map(cpu_seconds, v)) for k, v in groups.items()}
    per = {k: round((after[k] - before[k]) / n * 1e6) for k in groups}
    per["ab"] = round((t1.children_user + t1.children_system
                       - t0.children_user - t0.children_system) / n * 1e6)
    rps = re.search(r"Requests per second:\s+([\d.]+)", out)
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    print(f"req/s {rps.group(1) if rps else '?'} failed {failed.group(1) if failed else '?'} "
          f"us/request {per} total {sum(per.values())}")


if __name__ == "__main__":
    main()
