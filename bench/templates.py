"""Template rendering, side by side: dibble, Jinja2, Mako, string.Template, f-strings.

Run: ``.venv/bin/python bench/templates.py [--runs N] [--quick]``

Two workloads, every engine producing the same HTML with escaping on:

* ``table``: 1000 rows x 10 columns of mixed ints, floats and strings
  (one row in ten has characters that need escaping);
* ``page``: a realistic page: head, a navigation menu (a block), a 20-row
  table whose rows each have a nested block of 0-3 tags, a footer.

Before timing, the outputs are compared: they must be identical to dibble's
(whitespace is normalised only if an engine cannot produce it exactly, and
then rows and escaped entities are counted instead).  Each measurement is
the time of one render, taken as the median over ``--runs`` runs of a batch
of renders; the spread is the min-max over the runs.  Engines are measured
round-robin inside each run so that drift (CPU frequency, other load) hits
them all alike.  The garbage collector is off during a batch, as in timeit.

The result is printed and written as markdown to bench/results/templates.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import statistics
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import mako  # type: ignore[import-untyped]
import mako.template  # type: ignore[import-untyped]

from dibble._version import __version__ as dibble_version
from dibble.templates import Template
from dibble.templates._compiler import compile_tree
from dibble.templates._parser import parse

RESULTS = Path(__file__).parent / "results" / "templates.md"
Renderer = Callable[[], str]


def esc(value: object) -> str:
    """The hand-written escape the f-string and string.Template baselines use.

    Same entities as dibble, Jinja2 and Mako (markupsafe): & < > " '.
    """
    text = value if value.__class__ is str else str(value)
    assert isinstance(text, str)
    if "&" in text or "<" in text or ">" in text or '"' in text or "'" in text:
        return (
            text.replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace('"', "&#34;")
            .replace("'", "&#39;")
        )
    return text


# -- workload 1: the big table ------------------------------------------------

COLUMNS = [f"c{index}" for index in range(10)]


def table_data() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for number in range(1000):
        row: dict[str, object] = {}
        for index, column in enumerate(COLUMNS):
            if index % 3 == 0:
                row[column] = number * 7 + index
            elif index == 4:
                row[column] = number / 8
            elif number % 10 == 0 and index == 5:
                row[column] = f"<b>row {number}</b> & 'quoted' \"text\""
            else:
                row[column] = f"cell {number}-{index}"
        rows.append(row)
    return rows


TABLE_DIBBLE = (
    "<table>\n${_BEGIN_ROWS}<tr>"
    + "".join(f"<td>${{{column}}}</td>" for column in COLUMNS)
    + "</tr>\n${_END_ROWS}</table>\n"
)
TABLE_JINJA = (
    "<table>\n{% for row in rows %}<tr>"
    + "".join(f"<td>{{{{ row['{column}'] }}}}</td>" for column in COLUMNS)
    + "</tr>\n{% endfor %}</table>\n"
)
TABLE_MAKO = (
    "<table>\n% for row in rows:\n<tr>"
    + "".join(f"<td>${{row['{column}']}}</td>" for column in COLUMNS)
    + "</tr>\n% endfor\n</table>\n"
)
TABLE_STRING_ROW = string.Template(
    "<tr>" + "".join(f"<td>${column}</td>" for column in COLUMNS) + "</tr>\n"
)


def table_renderers(rows: list[dict[str, object]]) -> dict[str, Renderer]:
    dibble_template = Template(TABLE_DIBBLE)
    jinja_template = jinja2.Environment(autoescape=True, keep_trailing_newline=True).from_string(
        TABLE_JINJA
    )
    mako_template = mako.template.Template(TABLE_MAKO, default_filters=["h"])

    def string_template() -> str:
        substitute = TABLE_STRING_ROW.substitute
        return (
            "<table>\n"
            + "".join([substitute({k: esc(v) for k, v in row.items()}) for row in rows])
            + "</table>\n"
        )

    def f_string(e: Callable[[object], str] = esc) -> str:
        return (
            "<table>\n"
            + "".join(
                [
                    f"<tr><td>{e(r['c0'])}</td><td>{e(r['c1'])}</td><td>{e(r['c2'])}</td>"
                    f"<td>{e(r['c3'])}</td><td>{e(r['c4'])}</td><td>{e(r['c5'])}</td>"
                    f"<td>{e(r['c6'])}</td><td>{e(r['c7'])}</td><td>{e(r['c8'])}</td>"
                    f"<td>{e(r['c9'])}</td></tr>\n"
                    for r in rows
                ]
            )
            + "</table>\n"
        )

    return {
        "dibble": lambda: dibble_template.render(ROWS=rows),
        "Jinja2": lambda: jinja_template.render(rows=rows),
        "Mako": lambda: str(mako_template.render(rows=rows)),
        "string.Template": string_template,
        "f-string join": f_string,
    }


# -- workload 2: a realistic page -------------------------------------------


def page_data() -> dict[str, Any]:
    menu = [
        {"url": f"/{name.lower()}", "label": name, "cls": "active" if name == "Frames" else ""}
        for name in ["Home", "Frames", "Nights", "Projects", "Statistics", "Help & FAQ"]
    ]
    rows = []
    for number in range(20):
        rows.append(
            {
                "id": 1000 + number,
                "name": f"OMEGA.2024-03-{11 + number % 3:02d}T0{number % 10}:1{number % 6}.fits",
                "observer": "B. <Observer> & co" if number % 7 == 0 else "A. Astronomer",
                "exposure": 30.0 + number * 15.5,
                "size": f"{256 + number * 0.5:.1f} MB",
                "tags": [
                    {"tag": tag}
                    for tag in ["raw", "science", "flagged <sat>", "calibrated"][: number % 4]
                ],
            }
        )
    return {
        "title": "Frames for project OMEGA <VST>",
        "user": "Ann O'Nymous",
        "menu": menu,
        "rows": rows,
        "total": len(rows),
        "generated": "2024-03-12 09:41:07",
    }


PAGE_DIBBLE = """\
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${TITLE}</title>
<link rel="stylesheet" href="/static/site.css"></head>
<body>
<header><h1>${TITLE}</h1><p class="user">Logged in as ${USER}</p></header>
<nav><ul>
${_BEGIN_MENU}<li class="${CLS}"><a href="${URL}">${LABEL}</a></li>
${_END_MENU}</ul></nav>
<main>
<table class="frames">
<tr><th>Id</th><th>File</th><th>Observer</th><th>Exposure</th><th>Size</th><th>Tags</th></tr>
${_BEGIN_ROWS}<tr><td>${ID}</td><td><a href="/frame/${ID}">${NAME}</a></td><td>${OBSERVER}</td>\
<td>${EXPOSURE}</td><td>${SIZE}</td><td>${_BEGIN_TAGS}<span class="tag">${TAG}</span>\
${_END_TAGS}</td></tr>
${_END_ROWS}</table>
</main>
<footer>${TOTAL} frames; page generated ${GENERATED} for ${USER}.</footer>
</body></html>
"""

PAGE_JINJA = """\
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ title }}</title>
<link rel="stylesheet" href="/static/site.css"></head>
<body>
<header><h1>{{ title }}</h1><p class="user">Logged in as {{ user }}</p></header>
<nav><ul>
{% for item in menu %}<li class="{{ item['cls'] }}"><a href="{{ item['url'] }}">\
{{ item['label'] }}</a></li>
{% endfor %}</ul></nav>
<main>
<table class="frames">
<tr><th>Id</th><th>File</th><th>Observer</th><th>Exposure</th><th>Size</th><th>Tags</th></tr>
{% for row in rows %}<tr><td>{{ row['id'] }}</td><td><a href="/frame/{{ row['id'] }}">\
{{ row['name'] }}</a></td><td>{{ row['observer'] }}</td><td>{{ row['exposure'] }}</td>\
<td>{{ row['size'] }}</td><td>{% for tag in row['tags'] %}<span class="tag">{{ tag['tag'] }}\
</span>{% endfor %}</td></tr>
{% endfor %}</table>
</main>
<footer>{{ total }} frames; page generated {{ generated }} for {{ user }}.</footer>
</body></html>
"""

# In this one "\\\\" reaches Mako as a backslash that joins lines.
PAGE_MAKO = """\
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${title}</title>
<link rel="stylesheet" href="/static/site.css"></head>
<body>
<header><h1>${title}</h1><p class="user">Logged in as ${user}</p></header>
<nav><ul>
% for item in menu:
<li class="${item['cls']}"><a href="${item['url']}">${item['label']}</a></li>
% endfor
</ul></nav>
<main>
<table class="frames">
<tr><th>Id</th><th>File</th><th>Observer</th><th>Exposure</th><th>Size</th><th>Tags</th></tr>
% for row in rows:
<tr><td>${row['id']}</td><td><a href="/frame/${row['id']}">${row['name']}</a></td>\
<td>${row['observer']}</td><td>${row['exposure']}</td><td>${row['size']}</td><td>\\
% for tag in row['tags']:
<span class="tag">${tag['tag']}</span>\\
% endfor
</td></tr>
% endfor
</table>
</main>
<footer>${total} frames; page generated ${generated} for ${user}.</footer>
</body></html>
"""

PAGE_STRING_HEAD = string.Template("""\
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>$title</title>
<link rel="stylesheet" href="/static/site.css"></head>
<body>
<header><h1>$title</h1><p class="user">Logged in as $user</p></header>
<nav><ul>
$menu</ul></nav>
<main>
<table class="frames">
<tr><th>Id</th><th>File</th><th>Observer</th><th>Exposure</th><th>Size</th><th>Tags</th></tr>
$rows</table>
</main>
<footer>$total frames; page generated $generated for $user.</footer>
</body></html>
""")
PAGE_STRING_MENU = string.Template('<li class="$cls"><a href="$url">$label</a></li>\n')
PAGE_STRING_ROW = string.Template(
    '<tr><td>$id</td><td><a href="/frame/$id">$name</a></td><td>$observer</td>'
    "<td>$exposure</td><td>$size</td><td>$tags</td></tr>\n"
)
PAGE_STRING_TAG = string.Template('<span class="tag">$tag</span>')


def page_renderers(data: dict[str, Any]) -> dict[str, Renderer]:
    def upper_keys(mapping: dict[str, Any]) -> dict[str, Any]:
        return {
            key.upper(): [upper_keys(item) for item in value] if isinstance(value, list) else value
            for key, value in mapping.items()
        }

    # dibble's templates use upper-case names (the Astro-WISE convention);
    # the data is converted once, outside the timing.
    dibble_data = upper_keys(data)
    dibble_template = Template(PAGE_DIBBLE)
    jinja_template = jinja2.Environment(autoescape=True, keep_trailing_newline=True).from_string(
        PAGE_JINJA
    )
    mako_template = mako.template.Template(PAGE_MAKO, default_filters=["h"])

    def string_template() -> str:
        menu = "".join(
            [
                PAGE_STRING_MENU.substitute({k: esc(v) for k, v in item.items()})
                for item in data["menu"]
            ]
        )
        rows = "".join(
            [
                PAGE_STRING_ROW.substitute(
                    {k: esc(v) for k, v in row.items() if k != "tags"},
                    tags="".join(
                        [PAGE_STRING_TAG.substitute(tag=esc(t["tag"])) for t in row["tags"]]
                    ),
                )
                for row in data["rows"]
            ]
        )
        return PAGE_STRING_HEAD.substitute(
            title=esc(data["title"]),
            user=esc(data["user"]),
            menu=menu,
            rows=rows,
            total=esc(data["total"]),
            generated=esc(data["generated"]),
        )

    def f_string(e: Callable[[object], str] = esc) -> str:
        title, user = e(data["title"]), e(data["user"])
        menu = "".join(
            [
                f'<li class="{e(i["cls"])}"><a href="{e(i["url"])}">{e(i["label"])}</a></li>\n'
                for i in data["menu"]
            ]
        )
        rows = "".join(
            [
                f'<tr><td>{e(r["id"])}</td><td><a href="/frame/{e(r["id"])}">{e(r["name"])}</a>'
                f"</td><td>{e(r['observer'])}</td><td>{e(r['exposure'])}</td><td>{e(r['size'])}"
                "</td><td>"
                + "".join([f'<span class="tag">{e(t["tag"])}</span>' for t in r["tags"]])
                + "</td></tr>\n"
                for r in data["rows"]
            ]
        )
        return (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            f"<title>{title}</title>\n"
            '<link rel="stylesheet" href="/static/site.css"></head>\n<body>\n'
            f'<header><h1>{title}</h1><p class="user">Logged in as {user}</p></header>\n'
            f"<nav><ul>\n{menu}</ul></nav>\n<main>\n"
            '<table class="frames">\n'
            "<tr><th>Id</th><th>File</th><th>Observer</th><th>Exposure</th><th>Size</th>"
            "<th>Tags</th></tr>\n"
            f"{rows}</table>\n</main>\n"
            f"<footer>{e(data['total'])} frames; page generated {e(data['generated'])} "
            f"for {user}.</footer>\n</body></html>\n"
        )

    return {
        "dibble": lambda: dibble_template.render(dibble_data),
        "Jinja2": lambda: jinja_template.render(data),
        "Mako": lambda: str(mako_template.render(**data)),
        "string.Template": string_template,
        "f-string join": f_string,
    }


# -- checking and timing -----------------------------------------------------


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def check_outputs(workload: str, renderers: dict[str, Renderer], rows: int) -> list[str]:
    """Verify every engine's output against dibble's; return notes for the report."""
    reference = renderers["dibble"]()
    notes = []
    for engine, render in renderers.items():
        output = render()
        if output == reference:
            continue
        if normalise(output) != normalise(reference):
            sys.exit(f"{workload}: {engine} output differs from dibble's:\n{output[:2000]}")
        notes.append(f"{engine} matches after whitespace normalisation")
    for engine, render in renderers.items():
        output = render()
        if output.count("<tr>") != rows:
            sys.exit(f"{workload}: {engine} rendered {output.count('<tr>')} rows, not {rows}")
        if "<b>" in output or "<sat>" in output or "<VST>" in output or "<Observer>" in output:
            sys.exit(f"{workload}: {engine} left a value unescaped")
    entities = {
        entity: reference.count(entity) for entity in ("&amp;", "&lt;", "&gt;", "&#34;", "&#39;")
    }
    notes.append(
        f"all outputs identical ({len(reference):,} characters, {rows} rows; escaped: "
        + ", ".join(f"{count} {entity}" for entity, count in entities.items() if count)
        + ")"
    )
    return notes


def measure(renderers: dict[str, Renderer], runs: int, batch: int) -> dict[str, list[float]]:
    """Seconds per render, one sample per run for each engine, engines round-robin."""
    samples: dict[str, list[float]] = {engine: [] for engine in renderers}
    for render in renderers.values():  # warm up: caches, specialisation
        for _ in range(max(2, batch // 4)):
            render()
    order = list(renderers.items())
    for run in range(runs):
        # Rotate the order every run so no engine is always first after a pause.
        rotated = order[run % len(order) :] + order[: run % len(order)]
        for engine, render in rotated:
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                for _ in range(batch):
                    render()
                elapsed = time.perf_counter() - start
            finally:
                gc.enable()
            samples[engine].append(elapsed / batch)
    return samples


def measure_compile(runs: int) -> dict[str, float]:
    """Median seconds to compile the page template from source, per engine (no caches)."""
    compilers: dict[str, Callable[[], object]] = {
        "dibble": lambda: compile_tree(parse(PAGE_DIBBLE, "page")),
        "Jinja2": lambda: jinja2.Environment(autoescape=True).from_string(PAGE_JINJA),
        "Mako": lambda: mako.template.Template(PAGE_MAKO, default_filters=["h"]),
    }
    result = {}
    for engine, compile_once in compilers.items():
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            compile_once()
            times.append(time.perf_counter() - start)
        result[engine] = statistics.median(times)
    return result


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table_markdown(samples: dict[str, list[float]], title: str) -> list[str]:
    medians = {engine: statistics.median(times) for engine, times in samples.items()}
    jinja, fstring = medians["Jinja2"], medians["f-string join"]
    lines = [
        f"#### {title}",
        "",
        "| engine | median | spread (min-max) | vs Jinja2 | vs f-string join |",
        "|---|---:|---:|---:|---:|",
    ]
    for engine, times in samples.items():
        median = medians[engine]
        spread = f"{min(times) * 1e3:.3f}-{max(times) * 1e3:.3f} ms"
        lines.append(
            f"| {engine} | {median * 1e3:.3f} ms | {spread}"
            f" | {median / jinja:.2f}x | {median / fstring:.2f}x |"
        )
    lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs per engine (default 21)")
    parser.add_argument("--quick", action="store_true", help="fewer runs, for a smoke test")
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs

    table = table_renderers(table_data())
    page = page_renderers(page_data())
    notes = {
        "table": check_outputs("table", table, 1000),
        "page": check_outputs("page", page, 21),
    }
    table_samples = measure(table, runs, batch=5)
    page_samples = measure(page, runs, batch=200)
    compile_times = measure_compile(runs)

    ratio_table = statistics.median(table_samples["dibble"]) / statistics.median(
        table_samples["Jinja2"]
    )
    ratio_page = statistics.median(page_samples["dibble"]) / statistics.median(
        page_samples["Jinja2"]
    )
    target = "met" if max(ratio_table, ratio_page) <= 0.5 else "NOT met"
    versions = (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"Jinja2 {jinja2.__version__}, Mako {mako.__version__}, "
        f"dibble {dibble_version}"
    )
    lines = [
        "### Templates: dibble vs Jinja2, Mako, string.Template and f-strings",
        "",
        f"Measured by `bench/templates.py` on {cpu_model()} ({os.cpu_count()} CPUs), {versions}; "
        f"median of {runs} runs per engine, engines interleaved, garbage collector off while "
        "timing. Escaping is on everywhere (Jinja2 `autoescape=True`, Mako "
        "`default_filters=['h']`, the two hand-written baselines call a chained-`replace` "
        "escape). Every engine's output was checked against dibble's before timing.",
        "",
        f"**Target (dibble at most 0.5x Jinja2's time): {target}** - table {ratio_table:.2f}x, "
        f"page {ratio_page:.2f}x.",
        "",
        *table_markdown(table_samples, "1000 rows x 10 columns (one render)"),
        *(f"- {note}" for note in notes["table"]),
        "",
        *table_markdown(page_samples, "A realistic page: menu block + 20 rows with nested tags"),
        *(f"- {note}" for note in notes["page"]),
        "",
        "#### Compiling the page template from source (once per file version)",
        "",
        "| engine | median |",
        "|---|---:|",
        *(f"| {engine} | {seconds * 1e3:.2f} ms |" for engine, seconds in compile_times.items()),
        "",
    ]
    markdown = "\n".join(lines)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(markdown, encoding="utf-8")
    print(markdown)
    print(f"(written to {RESULTS})")


if __name__ == "__main__":
    main()
