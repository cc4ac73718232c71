#!/usr/bin/env python3
"""Writes deploy/grafana/ssrd.json, the Grafana dashboard of an ssrd tier.

The dashboard is code: this file builds it with the Grafana Foundation SDK
(grafana-foundation-sdk, pinned in requirements.txt) and prints or writes
its JSON. Run it through deploy/grafana/generate, which makes the venv;
CI regenerates the JSON and fails when the committed file differs.

Every query reads the metrics the supervisor exports (src/supervisor/
metrics.rs; the table in docs/operations.md, "Metrics"). Each one must
return data from a Prometheus scraping a loaded tier: tests/dashboard.rs
evaluates every target below against a real Prometheus and a real tier.

Two variables make it import anywhere: `datasource` (any Prometheus) and
`instance` (one or more ssrd hosts; all by default).
"""

import argparse
import difflib
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dash_m
from grafana_foundation_sdk.models import prometheus as prom_m

OUT = Path(__file__).resolve().parent / "ssrd.json"
UID = "ssrd-tier"

# Every panel and target reads from the data source the importer picks.
DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="${datasource}")
# The hosts shown: a regex over the `instance` label, all of them by default.
SEL = 'instance=~"$instance"'


def q(expr: str, legend: str, ref: str = "A") -> prom.Dataquery:
    """A range query of `expr`, its series named by `legend`."""
    return (
        prom.Dataquery()
        .datasource(DATASOURCE)
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref)
        .range()
    )


def rate(metric: str, by: str, extra: str = "") -> str:
    """Per-second rate of a counter over Grafana's rate window, summed by `by`."""
    labels = f"{SEL}, {extra}" if extra else SEL
    return f"sum by ({by}) (rate({metric}{{{labels}}}[$__rate_interval]))"


def increase(metric: str, by: str) -> str:
    """How much a counter grew over Grafana's rate window, summed by `by`."""
    return f"sum by ({by}) (increase({metric}{{{SEL}}}[$__rate_interval]))"


def quantile(phi: float, histogram: str, by: str = "") -> str:
    """The `phi` quantile of a histogram over Grafana's rate window."""
    group = f"{by}, le" if by else "le"
    return (
        f"histogram_quantile({phi}, sum by ({group}) "
        f"(rate({histogram}_bucket{{{SEL}}}[$__rate_interval])))"
    )


def series(title: str, description: str, unit: str, targets: list, width: int = 12):
    """A time series panel."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .span(width)
        .height(8)
        .line_width(1)
        .fill_opacity(10)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_b.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def traffic() -> tuple[str, list]:
    return (
        "Traffic and outcomes",
        [
            series(
                "Request and job rate",
                "Requests rendered by workers (ssrd_requests_total) and the jobs "
                "in them (ssrd_jobs_total), per second.",
                "reqps",
                [
                    q(rate("ssrd_requests_total", "instance"), "requests {{instance}}", "A"),
                    q(rate("ssrd_jobs_total", "instance"), "jobs {{instance}}", "B"),
                ],
            ),
            series(
                "Jobs by outcome",
                "Rendered jobs per second by outcome: ok, not_found, bad_request, "
                "error, timeout (ssrd_jobs_total). Anything but ok fell back to "
                "client-side rendering in the caller.",
                "reqps",
                [q(rate("ssrd_jobs_total", "outcome"), "{{outcome}}")],
            ),
            series(
                "Jobs by component",
                "Jobs per second by component, whatever their outcome "
                "(ssrd_render_duration_seconds_count). Names the bundle never "
                "rendered share _unknown; past 200 names, _other.",
                "reqps",
                [q(rate("ssrd_render_duration_seconds_count", "component"), "{{component}}")],
            ),
            series(
                "Failed job share",
                "Share of jobs that failed or timed out, per host: what the "
                "SsrdRenderErrors alerts (docs/alerts.yml) watch.",
                "percentunit",
                [
                    q(
                        rate("ssrd_jobs_total", "instance", 'outcome=~"error|timeout"')
                        + " / "
                        + rate("ssrd_jobs_total", "instance"),
                        "{{instance}}",
                    )
                ],
            ),
            series(
                "Requests answered without a worker",
                "haproxy's own answers by kind (ssrd_refused_requests_total: "
                "no_worker, queue_timeout; each of nginx's two tries counts) and "
                "requests refused because they are quarantined "
                "(ssrd_quarantine_refusals_total).",
                "reqps",
                [
                    q(rate("ssrd_refused_requests_total", "kind"), "{{kind}}", "A"),
                    q(rate("ssrd_quarantine_refusals_total", "instance"), "quarantined {{instance}}", "B"),
                ],
            ),
            series(
                "Jobs per request",
                "Mean batch size (ssrd_batch_jobs).",
                "short",
                [
                    q(
                        rate("ssrd_batch_jobs_sum", "instance")
                        + " / "
                        + rate("ssrd_batch_jobs_count", "instance"),
                        "{{instance}}",
                    )
                ],
            ),
        ],
    )


def latency() -> tuple[str, list]:
    return (
        "Queue wait and render time",
        [
            series(
                "Queue wait vs render time",
                "p50 and p99 of the time from nginx receiving a request to a "
                "worker starting it (ssrd_queue_wait_seconds) beside the time to "
                "render one job (ssrd_render_duration_seconds). A long queue wait "
                "wants more workers or hosts; a long render, a faster bundle.",
                "s",
                [
                    q(quantile(0.5, "ssrd_queue_wait_seconds"), "queue wait p50", "A"),
                    q(quantile(0.99, "ssrd_queue_wait_seconds"), "queue wait p99", "B"),
                    q(quantile(0.5, "ssrd_render_duration_seconds"), "render p50", "C"),
                    q(quantile(0.99, "ssrd_render_duration_seconds"), "render p99", "D"),
                ],
            ),
            series(
                "Render time p99 by component",
                "The slowest components (ssrd_render_duration_seconds by component).",
                "s",
                [
                    q(
                        quantile(0.99, "ssrd_render_duration_seconds", "component"),
                        "{{component}}",
                    )
                ],
            ),
            series(
                "Queue wait p99 by host",
                "p99 queue wait per host: what the SsrdQueueWait alerts watch.",
                "s",
                [q(quantile(0.99, "ssrd_queue_wait_seconds", "instance"), "{{instance}}")],
            ),
            series(
                "Requests waiting in haproxy",
                "Requests queued for a free worker when last scraped "
                "(ssrd_haproxy_queue_length).",
                "short",
                [q(f"sum by (instance) (ssrd_haproxy_queue_length{{{SEL}}})", "{{instance}}")],
            ),
        ],
    )


def workers() -> tuple[str, list]:
    return (
        "Workers",
        [
            series(
                "Workers ready and busy",
                "Workers in rotation (ssrd_workers{state=\"ready\"}) and how many "
                "of them were rendering, on average over the window: render "
                "seconds per second (ssrd_render_duration_seconds_sum). Busy "
                "close to ready means requests start to queue.",
                "short",
                [
                    q(
                        f'sum by (instance) (ssrd_workers{{{SEL}, state="ready"}})',
                        "ready {{instance}}",
                        "A",
                    ),
                    q(rate("ssrd_render_duration_seconds_sum", "instance"), "busy {{instance}}", "B"),
                ],
            ),
            series(
                "Workers by state",
                "starting, ready, draining, dead (ssrd_workers); and 1 while the "
                "host drains before a stop (ssrd_draining).",
                "short",
                [
                    q(f"sum by (state) (ssrd_workers{{{SEL}}})", "{{state}}", "A"),
                    q(f"max by (instance) (ssrd_draining{{{SEL}}})", "draining {{instance}}", "B"),
                ],
            ),
            series(
                "Worker restarts by reason",
                "Workers replaced in the window, by reason "
                "(ssrd_worker_restarts_total): crash, hung, heap_limit, bundle "
                "and start_timeout are failures; requests, heap, rss and reload "
                "are planned recycling.",
                "short",
                [q(increase("ssrd_worker_restarts_total", "reason"), "{{reason}}")],
            ),
            series(
                "Quarantines",
                "Requests put in quarantine in the window (ssrd_quarantined_"
                "requests_total: they crashed two workers, or ran to their "
                "deadline three times in a minute) and quarantined requests "
                "refused unrendered (ssrd_quarantine_refusals_total). The reason "
                "is in the log line (event request_quarantined).",
                "short",
                [
                    q(increase("ssrd_quarantined_requests_total", "instance"), "quarantined {{instance}}", "A"),
                    q(increase("ssrd_quarantine_refusals_total", "instance"), "refused {{instance}}", "B"),
                ],
            ),
            series(
                "JS heap per worker",
                "V8 heap in use per worker slot (ssrd_worker_heap_bytes).",
                "bytes",
                [q(f"ssrd_worker_heap_bytes{{{SEL}}}", "{{instance}} {{worker}}")],
            ),
            series(
                "Resident memory per worker",
                "RSS per worker slot (ssrd_worker_rss_bytes); ssrd replaces a "
                "worker before it passes recycle_rss_mb.",
                "bytes",
                [q(f"ssrd_worker_rss_bytes{{{SEL}}}", "{{instance}} {{worker}}")],
            ),
        ],
    )


def render_cache() -> tuple[str, list]:
    hits = rate("ssrd_render_cache_hits_total", "instance")
    misses = rate("ssrd_render_cache_misses_total", "instance")
    return (
        "Render cache",
        [
            series(
                "Render cache hits and misses",
                "Jobs of the components the bundle declares cached, per second: "
                "answered from a worker's cache (ssrd_render_cache_hits_total) or "
                "rendered (ssrd_render_cache_misses_total). Uncached components "
                "count neither: both stay at zero while the bundle declares none.",
                "short",
                [
                    q(hits, "hits {{instance}}", "A"),
                    q(misses, "misses {{instance}}", "B"),
                ],
            ),
            series(
                "Render cache hit ratio",
                "Hits over hits plus misses, per host (0 while no cached "
                "component was asked for).",
                "percentunit",
                [q(f"{hits} / clamp_min({hits} + {misses}, 1e-9)", "{{instance}}")],
            ),
            series(
                "Render cache size per worker",
                "Bytes each worker's render cache holds (ssrd_render_cache_bytes: "
                "keys, HTML and meta; never above render_cache_bytes).",
                "bytes",
                [q(f"ssrd_render_cache_bytes{{{SEL}}}", "{{instance}} {{worker}}")],
            ),
            series(
                "Render cache evictions",
                "Entries dropped in the window (ssrd_render_cache_evictions_total): "
                "space (a component's maxEntries or the byte budget) or ttl. Many "
                "space evictions with a low hit ratio: the budget is too small "
                "for the props' variety.",
                "short",
                [q(increase("ssrd_render_cache_evictions_total", "reason"), "{{reason}}")],
            ),
        ],
    )


def bundle_and_callers() -> tuple[str, list]:
    running = (
        table.Panel()
        .title("Running bundle")
        .description(
            "The bundle each host serves (ssrd_bundle_info: its SHA-256 and "
            "the short hash also sent as X-Ssrd-Bundle). Two hashes during a "
            "rolling deploy; one after."
        )
        .datasource(DATASOURCE)
        .span(12)
        .height(8)
        .with_target(
            q(f"max by (instance, short, sha256) (ssrd_bundle_info{{{SEL}}})", "{{short}}", "A")
            .instant()
            .format(prom_m.PromQueryFormat.TABLE)
        )
        .with_transformation(
            dash_m.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True, "Value": True},
                    "indexByName": {"instance": 0, "short": 1, "sha256": 2},
                    "renameByName": {"short": "bundle", "sha256": "SHA-256"},
                },
            )
        )
    )
    age = (
        stat.Panel()
        .title("Bundle age")
        .description(
            "Time since each host started serving its current bundle "
            "(ssrd_bundle_loaded_timestamp_seconds)."
        )
        .datasource(DATASOURCE)
        .unit("s")
        .span(6)
        .height(8)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(
            q(f"time() - ssrd_bundle_loaded_timestamp_seconds{{{SEL}}}", "{{instance}}")
        )
    )
    return (
        "Bundle and callers",
        [
            running,
            age,
            series(
                "Reloads",
                "Bundle reloads in the window by result (ssrd_reloads_total); a "
                "failed one left the old bundle serving.",
                "short",
                [q(increase("ssrd_reloads_total", "result"), "{{result}}")],
                width=6,
            ),
            series(
                "Callers' hang-ups",
                "Requests whose caller went away before the answer, per second "
                "(ssrd_abandoned_requests_total): their rendering stopped. A "
                "rise means callers' timeouts are shorter than the tier's "
                "answers.",
                "reqps",
                [q(rate("ssrd_abandoned_requests_total", "instance"), "{{instance}}")],
                width=24,
            ),
        ],
    )


SECTIONS = [traffic, latency, workers, render_cache, bundle_and_callers]


def build() -> dash.Dashboard:
    datasource = (
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
    )
    instance = (
        dash.QueryVariable("instance")
        .label("Host")
        .datasource(DATASOURCE)
        .query("label_values(ssrd_workers, instance)")
        .definition("label_values(ssrd_workers, instance)")
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    board = (
        dash.Dashboard("ssrd")
        .uid(UID)
        .description(
            "An ssrd server-side rendering tier: traffic, queue wait against "
            "render time, workers, memory, bundle and callers. Generated by "
            "deploy/grafana/generate.py; do not edit the JSON by hand."
        )
        .tags(["ssrd", "generated"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone(common.TimeZoneBrowser)
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .with_variable(datasource)
        .with_variable(instance)
    )
    # Open rows, each followed by its panels at the top level (a row holds
    # its panels itself only while collapsed); ids in reading order.
    ids = iter(range(1, 1000))
    for section in SECTIONS:
        title, panels = section()
        board = board.with_row(dash.Row(title).collapsed(False).id(next(ids)))
        for panel in panels:
            board = board.with_panel(panel.id(next(ids)))
    return board


def render() -> str:
    encoded = JSONEncoder(sort_keys=True, indent=2).encode(build().build())
    # Round-trip through json so the text depends on the data alone.
    return json.dumps(json.loads(encoded), sort_keys=True, indent=2) + "\n"


def reads_back(text: str) -> bool:
    """Whether the SDK decodes `text` into its dashboard model (panels and
    queries by their plugin types) and encodes it back to the same data."""
    register_default_plugins()
    data = json.loads(text)
    model = dash_m.Dashboard.from_json(data)
    return json.loads(JSONEncoder(sort_keys=True).encode(model)) == data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--stdout", action="store_true", help="print instead of writing ssrd.json")
    mode.add_argument(
        "--check",
        action="store_true",
        help="exit 1, showing the difference, if ssrd.json is not what this writes",
    )
    args = parser.parse_args()
    text = render()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        committed = OUT.read_text() if OUT.exists() else ""
        if committed == text:
            if not reads_back(committed):
                print(
                    f"{OUT.name} does not read back into the SDK's dashboard model unchanged",
                    file=sys.stderr,
                )
                return 1
            print(f"{OUT.name} is what generate.py writes", file=sys.stderr)
            return 0
        sys.stderr.writelines(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"{OUT.name} (committed)",
                f"{OUT.name} (generated)",
            )
        )
        print(
            f"\n{OUT.name} differs from what generate.py writes: run "
            "deploy/grafana/generate and commit the result",
            file=sys.stderr,
        )
        return 1
    OUT.write_text(text)
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
