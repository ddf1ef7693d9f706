#!/usr/bin/env python3
"""BENCHMARKS.md and docs/benchmarks.svg from a run's raw results.

    python3 bench/report.py [bench/results/latest.json]

regenerates both from a saved run (bench/run.py calls the same code at the
end of a run). A ``## Templates`` section already in BENCHMARKS.md is kept
as it is: bench/templates.py writes that one.
"""

from __future__ import annotations

import html
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MARKDOWN = REPO / "BENCHMARKS.md"
CHART = REPO / "docs" / "benchmarks.svg"
TEMPLATES_HEADER = "## Templates"
X = "\u00d7"  # multiplication sign, for ratios
DASH = "\u2013"  # en dash, for ranges and empty cells

TITLES = {
    "plaintext": "Plaintext, keep-alive",
    "close": "Plaintext, Connection: close",
    "pipelined": "Plaintext, pipelined 16 deep",
    "json": "Small JSON",
    "calendar": "Calendar page (/?year=2003)",
    "idle": "Memory per idle keep-alive connection",
    "latency": "Latency at a fixed request rate",
    "instructions": "Instructions per request (callgrind)",
}
DESCRIPTIONS = {
    "plaintext": "`GET /plaintext`, 13-byte body, 64 keep-alive connections (wrk).",
    "close": "`GET /plaintext` with `Connection: close`: a new TCP connection per request.",
    "pipelined": "`GET /plaintext`, 16 requests written back to back on each of 64 "
    "connections (wrk + bench/pipeline.lua). Reported apart: few real clients pipeline.",
    "json": '`GET /json` → `{"message": "Hello, World!"}`, serialised per request.',
    "calendar": "`GET /?year=2003`: `calendar.calendar(2003)`, HTML-escaped into a page per "
    "request (about 7 KB). nginx serves a **static** pre-rendered copy.",
    "idle": "10,000 keep-alive connections each send one request, read the answer and go "
    "idle; the growth of the server's process-tree RSS (VmRSS, summed over its processes) "
    "over a warmed-up baseline, divided by the connections still open.",
    "latency": "`GET /plaintext` at a fixed rate, half of nginx's keep-alive result in round 1, "
    "open loop (bench/openloop.c), 64 connections; latency from each request's intended "
    "send time, so a server that falls behind is charged for the queue.",
    "instructions": "`GET /plaintext` over one keep-alive connection under "
    "`valgrind --tool=callgrind`: (total after 100 + N requests minus total after 100 "
    "requests) / N, so startup, shutdown and the first requests' one-time work cancel out. "
    "Counts instructions, not time, so it repeats on a busy machine.",
}
THROUGHPUT = ("plaintext", "close", "pipelined", "json", "calendar")
STARLETTE = "uvicorn-starlette"


@dataclass(frozen=True)
class Stat:
    median: float
    low: float
    high: float
    runs: int


def stat(results: dict[str, Any], workload: str, server: str) -> Stat | None:
    cell = results["cells"].get(workload, {}).get(server)
    if not cell or not cell["runs"]:
        return None
    values = [run["value"] for run in cell["runs"]]
    return Stat(statistics.median(values), min(values), max(values), len(values))


def field_stat(results: dict[str, Any], workload: str, server: str, key: str) -> Stat | None:
    cell = results["cells"].get(workload, {}).get(server)
    if not cell or not cell["runs"]:
        return None
    values = [run[key] for run in cell["runs"]]
    return Stat(statistics.median(values), min(values), max(values), len(values))


def ratio(results: dict[str, Any], workload: str, server: str, base: str) -> float | None:
    ours, theirs = stat(results, workload, server), stat(results, workload, base)
    if ours is None or theirs is None or theirs.median == 0:
        return None
    return ours.median / theirs.median


def cell_note(results: dict[str, Any], workload: str, server: str) -> str:
    cell = results["cells"].get(workload, {}).get(server)
    if not cell:
        return "not run"
    notes = []
    if cell.get("skipped"):
        notes.append(cell["skipped"])
    if cell["errors"]:
        notes.append(f"{len(cell['errors'])} failed: {cell['errors'][0].splitlines()[0]}")
    return "; ".join(notes)


# --- targets ---------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    text: str
    workload: str
    server: str
    measure: Callable[[dict[str, Any]], float | None]
    show: Callable[[float], str]
    passes: Callable[[float], bool]


def _ratio_to(workload: str, server: str, base: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda results: ratio(results, workload, server, base)


def _median_of(workload: str, server: str) -> Callable[[dict[str, Any]], float | None]:
    def measure(results: dict[str, Any]) -> float | None:
        found = stat(results, workload, server)
        return None if found is None else found.median

    return measure


def _latency_p99(server: str) -> Callable[[dict[str, Any]], float | None]:
    """The median p99; infinite when the server fell behind the rate in most runs."""

    def measure(results: dict[str, Any]) -> float | None:
        cell = results["cells"].get("latency", {}).get(server)
        if not cell or not (cell["runs"] or cell["errors"]):
            return None
        # Runs that failed for another reason (a server that did not start) do not count.
        behind = sum(bool(run.get("overloaded")) for run in cell["runs"])
        behind += sum("overloaded" in error for error in cell["errors"])
        counted = len(cell["runs"]) + sum("overloaded" in error for error in cell["errors"])
        if counted and behind * 2 > counted:
            return float("inf")
        found = stat(results, "latency", server)
        return None if found is None else found.median

    return measure


def _targets() -> list[Target]:
    percent: Callable[[float], str] = lambda v: f"{v:.0%} of nginx"  # noqa: E731
    times: Callable[[float], str] = lambda v: f"{v:.2f}{X} uvicorn+Starlette"  # noqa: E731
    found = [
        Target(
            "Plaintext keep-alive, sync methlet ≥ 50% of nginx",
            "plaintext",
            "dibble-sync",
            _ratio_to("plaintext", "dibble-sync", "nginx"),
            percent,
            lambda v: v >= 0.5,
        ),
        Target(
            f"Plaintext keep-alive, sync methlet ≥ 2.5{X} uvicorn+Starlette",
            "plaintext",
            "dibble-sync",
            _ratio_to("plaintext", "dibble-sync", STARLETTE),
            times,
            lambda v: v >= 2.5,
        ),
        Target(
            "Plaintext keep-alive, async methlet ≥ 40% of nginx",
            "plaintext",
            "dibble-async",
            _ratio_to("plaintext", "dibble-async", "nginx"),
            percent,
            lambda v: v >= 0.4,
        ),
    ]
    for server, variant in (("dibble-sync", "sync"), ("dibble-async", "async")):
        found += [
            Target(
                f"Connection: close ≥ 80% of nginx ({variant})",
                "close",
                server,
                _ratio_to("close", server, "nginx"),
                percent,
                lambda v: v >= 0.8,
            ),
            Target(
                f"Small JSON ≥ 2.5{X} uvicorn+Starlette ({variant})",
                "json",
                server,
                _ratio_to("json", server, STARLETTE),
                times,
                lambda v: v >= 2.5,
            ),
            Target(
                f"Calendar ≥ 1.3{X} uvicorn+Starlette ({variant})",
                "calendar",
                server,
                _ratio_to("calendar", server, STARLETTE),
                times,
                lambda v: v >= 1.3,
            ),
            Target(
                f"Idle keep-alive connection ≤ 3 KB ({variant})",
                "idle",
                server,
                _median_of("idle", server),
                lambda v: f"{v:,.0f} bytes",
                lambda v: v <= 3000,
            ),
            Target(
                f"p99 latency at the fixed rate ≤ 2 ms ({variant})",
                "latency",
                server,
                _latency_p99(server),
                lambda v: "overloaded" if v == float("inf") else f"p99 {v:.2f} ms",
                lambda v: v <= 2.0,
            ),
        ]
    return found


def target_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for target in _targets():
        if target.workload not in results["workloads"]:
            continue
        value = target.measure(results)
        if value is None:
            rows.append((target.text, "not measured", DASH))
        else:
            rows.append(
                (target.text, target.show(value), "met" if target.passes(value) else "missed")
            )
    return rows


# --- formatting ------------------------------------------------------------------


def _label(results: dict[str, Any], server: str) -> str:
    return str(results["servers"][server]["label"])


def _num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _spread(found: Stat, digits: int = 0) -> str:
    if found.runs == 1:
        return "1 run"
    return f"{_num(found.low, digits)}{DASH}{_num(found.high, digits)}"


def _ratio_text(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}{X}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _server_order(results: dict[str, Any]) -> list[str]:
    return list(results["servers"])


def throughput_section(results: dict[str, Any], workload: str) -> list[str]:
    rows = []
    for server in _server_order(results):
        found = stat(results, workload, server)
        label = _label(results, server)
        if found is None:
            rows.append([label, DASH, DASH, DASH, DASH, cell_note(results, workload, server)])
            continue
        note = cell_note(results, workload, server)
        if workload == "calendar" and results["servers"][server]["kind"] == "ceiling":
            note = "STATIC file" + (f"; {note}" if note else "")
        rows.append(
            [
                f"**{label}**" if results["servers"][server]["kind"] == "dibble" else label,
                _num(found.median),
                _spread(found),
                _ratio_text(ratio(results, workload, server, "nginx")),
                _ratio_text(ratio(results, workload, server, STARLETTE)),
                note,
            ]
        )
    header = ["server", "requests/s (median)", f"spread (min{DASH}max)", f"{X} nginx"]
    header += [f"{X} uvicorn+Starlette", "notes"]
    return _table(header, rows)


def idle_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for server in _server_order(results):
        found = stat(results, "idle", server)
        label = _label(results, server)
        if found is None:
            rows.append([label, DASH, DASH, DASH, cell_note(results, "idle", server)])
            continue
        runs = results["cells"]["idle"][server]["runs"]
        rows.append(
            [
                label,
                _num(found.median),
                _spread(found),
                f"{runs[-1]['baseline_kib']:,} → {runs[-1]['loaded_kib']:,} KiB",
                cell_note(results, "idle", server),
            ]
        )
    header = ["server", "bytes per connection (median)", "spread", "RSS (last run)", "notes"]
    return _table(header, rows)


def latency_section(results: dict[str, Any]) -> list[str]:
    rows = []
    rate = results["settings"].get("latency_rate") or 0
    for server in _server_order(results):
        p99 = stat(results, "latency", server)
        label = _label(results, server)
        cell = results["cells"].get("latency", {}).get(server)
        failed = [error for error in (cell or {}).get("errors", []) if "overloaded" not in error]
        behind = [run for run in (cell or {}).get("runs", []) if run.get("overloaded")]
        behind_failed = len((cell or {}).get("errors", [])) - len(failed)
        notes = []
        if behind or behind_failed:
            answered = [run["achieved_rps"] for run in behind]
            counted = len((cell or {}).get("runs", [])) + behind_failed
            text = f"overloaded in {len(behind) + behind_failed} of {counted} runs"
            if answered:
                low, high = _num(min(answered)), _num(max(answered))
                span = low if low == high else f"{low}{DASH}{high}"
                text += f" (answered {span} of {_num(rate)} req/s)"
            notes.append(text + ": the percentiles are lower bounds")
            if behind_failed:
                notes.append(f"{behind_failed} run(s) with no request measured")
        if failed:
            notes.append(f"{len(failed)} failed: {failed[0].splitlines()[0]}")
        if p99 is None:
            rows.append([label, DASH, DASH, DASH, DASH, "; ".join(notes) or "not run"])
            continue
        p50 = field_stat(results, "latency", server, "p50_ms")
        achieved = field_stat(results, "latency", server, "achieved_rps")
        assert p50 is not None
        assert achieved is not None
        rows.append(
            [
                label,
                _num(p50.median, 3),
                _num(p99.median, 3),
                _spread(p99, 3),
                _num(achieved.median),
                "; ".join(notes),
            ]
        )
    header = ["server", "p50 ms", "p99 ms (median)", "p99 spread", "achieved req/s", "notes"]
    return _table(header, rows)


def instructions_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for server, cell in results["cells"].get("instructions", {}).items():
        found = stat(results, "instructions", server)
        if found is None:
            rows.append(
                [_label(results, server), DASH, cell_note(results, "instructions", server)]
            )
            continue
        run = cell["runs"][-1]
        detail = ""
        if "instructions_base" in run:
            detail = (
                f"{run['instructions_base']:,} for startup, {run['warm_requests']} warm-up "
                f"requests and shutdown; {run['instructions_loaded']:,} with "
                f"{run['requests']:,} more"
            )
        rows.append([_label(results, server), _num(found.median), detail])
    return _table(["server", "instructions per request", "notes"], rows)


def markdown(results: dict[str, Any], chart: str | None) -> str:
    settings, info = results["settings"], results["machine"]
    lines = [
        "# Benchmarks",
        "",
        "dibble side by side with its peers, measured in one run on one machine by "
        "`bench/run.py` (how it works and how to rerun it: bench/README.md). Every server runs "
        "as one process (one worker) pinned to core 0 with `taskset`; the load generators run "
        "on core 1. Each cell is a fresh server process, a warm-up, then the measurement; "
        f"workloads and servers are interleaved over {settings['rounds']} round(s), and the "
        f"tables give the median with the spread (min{DASH}max) over the rounds. Every "
        "response is checked: wrk and the open-loop client count non-2xx answers and "
        "socket errors (a cell with any fails), and the bodies are compared with the "
        "expected ones before and after every cell. The ratios are from this one run.",
        "",
        f"**Command:** `{results['command']}`  ",
        f"**Date:** {results['date']}, {results['minutes']} minutes  ",
        f"**Settings:** {settings['duration_s']:g} s per cell after {settings['warmup_s']:g} s "
        f"of warm-up, {settings['connections']} connections, pipelining "
        f"{settings['pipeline_depth']} deep, {settings['idle_connections']:,} idle connections, "
        f"latency at {settings['latency_rate'] or 0:,.0f} req/s, callgrind over "
        f"{settings['callgrind_requests']:,} requests, keep-alive timeouts raised to "
        f"{settings['keep_alive_s']} s where a server has the setting",
        "",
    ]
    if results.get("quick") or settings["rounds"] < 3:
        lines += [
            f"> **Note:** a {settings['rounds']}-round run"
            + (" (`--quick`: a smoke test)" if results.get("quick") else "")
            + "; the numbers are indicative only.",
            "",
        ]
    lines += [
        "## Machine",
        "",
        *_table(
            ["CPU", "cores", "memory", "kernel", "python (driver)"],
            [
                [
                    info["cpu"],
                    str(info["cores"]),
                    info["memory"],
                    info["kernel"],
                    info["python (driver)"],
                ]
            ],
        ),
        "",
        "## Targets",
        "",
        "From the issue that set up this benchmark; ratios from this run, one server core.",
        "",
        *_table(["target", "measured", "status"], [list(row) for row in target_rows(results)]),
        "",
    ]
    if chart:
        lines += [f"![requests per second, by workload and server]({chart})", ""]
    lines += ["## Results", ""]
    for workload in results["workloads"]:
        if workload not in TITLES:
            continue
        lines += [f"### {TITLES[workload]}", "", DESCRIPTIONS[workload], ""]
        if workload in THROUGHPUT:
            lines += throughput_section(results, workload)
        elif workload == "idle":
            lines += idle_section(results)
        elif workload == "latency":
            lines += latency_section(results)
        else:
            lines += instructions_section(results)
        lines.append("")
    lines += [
        "## Servers",
        "",
        *_table(
            ["server", "how it ran", "status"],
            [
                [
                    meta["label"],
                    meta["notes"],
                    "ok" if meta["available"] else f"skipped: {meta['problem'] or 'not run'}",
                ]
                for meta in results["servers"].values()
            ],
        ),
        "",
        "## Versions",
        "",
        *_table(["component", "version"], [[k, v] for k, v in results["versions"].items()]),
        "",
    ]
    return "\n".join(_one_line(line) for line in lines)


def _one_line(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ")


# --- chart -----------------------------------------------------------------------

BAR_HEIGHT, BAR_GAP, LABEL_WIDTH, BAR_WIDTH, VALUE_WIDTH = 16, 5, 190, 520, 190
COLOURS = {"dibble": "#d9480f", "ceiling": "#495057", "peer": "#4c6ef5"}


def svg_chart(results: dict[str, Any]) -> str:
    """Horizontal bars per workload (median), with the min-max spread as a whisker."""
    panels: list[tuple[str, str, list[tuple[str, str, Stat]], Callable[[float], str]]] = []
    for workload in results["workloads"]:
        rows = []
        for server in _server_order(results):
            found = stat(results, workload, server)
            if found is None:
                continue
            label = _label(results, server)
            if workload == "latency" and _latency_p99(server)(results) == float("inf"):
                label += "\t(overloaded)"  # the tab splits the bar's name from its note
            rows.append((label, results["servers"][server]["kind"], found))
        if not rows:
            continue
        rate = results["settings"].get("latency_rate") or 0
        if workload in THROUGHPUT:
            panels.append((f"{TITLES[workload]}: requests/s", workload, rows, _num))
        elif workload == "idle":
            panels.append((f"{TITLES[workload]}: bytes (lower is better)", workload, rows, _num))
        elif workload == "latency":
            title = f"p99 latency at {rate:,.0f} requests/s, open loop: ms (lower is better)"
            panels.append((title, workload, rows, lambda v: f"{v:.2f}"))
        elif workload == "instructions":
            title = f"{TITLES[workload]}: instructions (lower is better)"
            panels.append((title, workload, rows, _num))
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    parts: list[str] = []
    y = 10
    for title, workload, rows, show in panels:
        heading = html.escape(title)
        parts.append(
            f'<text x="4" y="{y + 14}" font-weight="bold" font-size="14">{heading}</text>'
        )
        y += 24
        if workload == "calendar":
            parts.append(
                f'<text x="{LABEL_WIDTH}" y="{y + 8}" font-size="11" fill="#495057">'
                "nginx serves a static pre-rendered copy (bar cut short)</text>"
            )
            y += 14
        top = max(row[2].high for row in rows) or 1.0
        if workload == "latency":
            top = min(top, 20.0)  # an overloaded server's queue runs to seconds
        elif workload == "calendar":
            # nginx's static file would flatten every dynamic bar: scale to those.
            dynamic = [found.high for _, kind, found in rows if kind != "ceiling"]
            top = min(top, 1.5 * max(dynamic, default=top))
        for labelled, kind, found in rows:
            label, _, note = labelled.partition("\t")
            length = BAR_WIDTH * min(found.median, top) / top
            text_x = LABEL_WIDTH + length + 6
            colour = COLOURS.get(kind, COLOURS["peer"])
            weight = ' font-weight="bold"' if kind == "dibble" else ""
            parts.append(
                f'<text x="{LABEL_WIDTH - 6}" y="{y + 12}" text-anchor="end"{weight}>'
                f"{html.escape(label)}</text>"
            )
            parts.append(
                f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{BAR_HEIGHT}" '
                f'fill="{colour}"/>'
            )
            if found.runs > 1:
                low = LABEL_WIDTH + BAR_WIDTH * min(found.low, top) / top
                high = LABEL_WIDTH + BAR_WIDTH * min(found.high, top) / top
                mid = y + BAR_HEIGHT / 2
                parts.append(
                    f'<path d="M{low:.1f} {mid}H{high:.1f}M{low:.1f} {mid - 4}V{mid + 4}'
                    f'M{high:.1f} {mid - 4}V{mid + 4}" stroke="#212529" stroke-width="1"/>'
                )
                text_x = max(text_x, high + 6)
            clipped = " ▸" if found.median > top else ""
            value = html.escape(show(found.median) + clipped + (f" {note}" if note else ""))
            parts.append(f'<text x="{text_x:.1f}" y="{y + 12}">{value}</text>')
            y += BAR_HEIGHT + BAR_GAP
        y += 14
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" '
        f'viewBox="0 0 {width} {y}" font-family="sans-serif" font-size="12">\n'
        f'<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n'
    )


# --- output ----------------------------------------------------------------------


TEMPLATES_POINTER = (
    "The template engine's own benchmark is `bench/templates.py`; its results go here."
)


def templates_section(existing: str) -> str:
    """The ``## Templates`` section of BENCHMARKS.md, kept as it is when it has content.

    Without one, the section is made from bench/results/templates.md (what
    bench/templates.py writes) when that exists, else it only says where the
    template benchmark lives.
    """
    lines = existing.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.rstrip() == TEMPLATES_HEADER:
            section = "".join(lines[index:]).rstrip() + "\n"
            body = section.removeprefix(TEMPLATES_HEADER).strip()
            if body and body != TEMPLATES_POINTER:
                return section
            break
    measured = BENCH / "results" / "templates.md"
    if measured.exists():
        return f"{TEMPLATES_HEADER}\n\n{measured.read_text(encoding='utf-8').strip()}\n"
    return f"{TEMPLATES_HEADER}\n\n{TEMPLATES_POINTER}\n"


def write(results: dict[str, Any]) -> list[Path]:
    """Write docs/benchmarks.svg and BENCHMARKS.md (keeping its Templates section)."""
    CHART.parent.mkdir(exist_ok=True)
    CHART.write_text(svg_chart(results), encoding="utf-8")
    existing = MARKDOWN.read_text(encoding="utf-8") if MARKDOWN.exists() else ""
    text = markdown(results, CHART.relative_to(REPO).as_posix())
    MARKDOWN.write_text(text + "\n" + templates_section(existing), encoding="utf-8")
    return [MARKDOWN, CHART]


def summary(results: dict[str, Any]) -> str:
    """A short plain-text table for the console at the end of a run."""
    lines = ["", "== summary (median over rounds)"]
    for workload in results["workloads"]:
        by_server = results["cells"].get(workload, {})
        if not by_server:
            continue
        lines.append(f"-- {TITLES.get(workload, workload)}")
        for server in by_server:
            found = stat(results, workload, server)
            if found is None:
                lines.append(f"   {server:<18} {cell_note(results, workload, server)}")
                continue
            text = f"   {server:<18} {found.median:>12,.1f}"
            if workload in THROUGHPUT:
                for base in ("nginx", STARLETTE):
                    value = ratio(results, workload, server, base)
                    text += f"   {value:5.2f}x {base}" if value is not None else ""
            lines.append(text)
    rows = target_rows(results)
    if rows:
        lines.append("-- targets")
        lines += [f"   {status:<7} {text}: {measured}" for text, measured, status in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else BENCH / "results" / "latest.json"
    results = json.loads(source.read_text())
    for path in write(results):
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
