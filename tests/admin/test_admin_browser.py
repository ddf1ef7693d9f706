"""The Statistics page in headless Chromium: log in as an administrator, see the charts.

A real server on 127.0.0.1 with statistics on gets some traffic; the
browser logs in through the admin area's form, opens the Statistics page,
and checks that the charts are drawn (31 bars of requests per day) and
that a bar's tooltip counts today's requests.  The page is saved as a
screenshot under the test's tmp folder, and also in ``$DIBBLE_SCREENSHOT_DIR``
when that is set (``docs/admin-statistics.png`` is made that way).

Chromium is Debian's ``chromium``, driven by Playwright's Python package;
without them the test is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.config import parse_config

SCREENSHOT = "admin-statistics.png"


class Site(dibble.Plugin):
    def onHome(self) -> str:
        return "<p>home</p>"

    def onReport(self, n: int = 1) -> str:
        return "<p>" + "row " * n + "</p>"


@pytest.fixture
def server(site_dir: Path) -> Iterator[dibble.HTTPServer]:
    config = parse_config(
        {
            "server": {"host": "127.0.0.1", "port": 0, "name": "observatory"},
            "paths": {"data_dir": str(site_dir)},
            "admin": {"enabled": True},
            "statistics": {"enabled": True},
        }
    )
    context = dibble.Context()
    made = dibble.HTTPServer.from_config(config, context)
    made.configure(access_log=False)
    made.register(Site())
    context.start_in_thread()
    try:
        yield made
    finally:
        context.join(5)


def traffic(server: dibble.HTTPServer) -> int:
    """Some requests of every kind; how many were made."""
    base = server.url.rstrip("/")
    paths = [
        "/",
        "/report?n=50",
        "/report?n=5000",
        "/nothing-here",
        "/",
        "/report",
        "/report?n=oops",
        "/admin/statistics",
    ]
    for path in paths:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as exc:
            exc.read()
            exc.close()
    return len(paths)


def save(page: Any, tmp_path: Path) -> Path:
    shot = tmp_path / SCREENSHOT
    page.screenshot(path=str(shot), full_page=True)
    extra = os.environ.get("DIBBLE_SCREENSHOT_DIR")
    if extra:
        shutil.copyfile(shot, Path(extra) / SCREENSHOT)
    return shot


def test_the_statistics_page_in_a_browser(
    browser: Any, server: dibble.HTTPServer, tmp_path: Path
) -> None:
    made = traffic(server)
    base = server.url.rstrip("/")
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.goto(base + "/admin/statistics")
        assert "/admin/login" in page.url  # sent to the login form first
        page.fill("input[name=user]", "root")
        page.fill("input[name=password]", "root pw")
        page.click("button[type=submit]")
        page.wait_for_url(base + "/admin/statistics")
        assert page.title() == "Statistics · observatory admin"
        charts = page.locator("svg.chart")
        assert charts.count() == 4
        requests_chart = charts.nth(0)
        assert requests_chart.get_attribute("role") == "img"
        assert requests_chart.locator("rect.bar").count() == 31
        assert charts.nth(1).locator("rect.bar").count() == 31
        assert charts.nth(2).locator("rect.bar").count() >= 1
        last = requests_chart.locator("rect.bar").nth(30)
        assert int(float(last.get_attribute("height") or "0")) > 0
        tip = last.locator("title").text_content() or ""
        day, count = tip.split(": ")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", day)
        assert count.endswith(" requests")
        assert int(count.split()[0]) > 0  # today's traffic (by people: not the scripted part)
        json_text = page.evaluate("async () => (await fetch('/admin/statistics.json')).text()")
        report = json.loads(json_text)
        assert report["forever"]["requests"] + report["bots"]["requests"] >= made
        box = requests_chart.bounding_box()
        assert box is not None and box["width"] > 300  # drawn, not collapsed
        shot = save(page, tmp_path)
    finally:
        page.close()
    assert shot.stat().st_size > 10_000
