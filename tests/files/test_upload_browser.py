"""examples/upload.py in headless Chromium: the progress bar follows the server's count.

The server reads the upload at a limited rate (``--rate``), so the page's
polls of ``/_upload_progress`` see the body arrive in steps.  Chromium is
Debian's ``chromium``, driven by Playwright's Python package; without them
the test is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import dibble

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "upload.py"
SIZE = 3 * 1024 * 1024
RATE = 2 * 1024 * 1024  # bytes per second: about 1.5 s for the file


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dibble_example_upload", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_progress_bar_moves_through_intermediate_values(
    example: ModuleType, browser: Any, tmp_path: Path
) -> None:
    context = dibble.Context()
    server = example.make_server(
        ("127.0.0.1", 0), tmp_path, rate=RATE, context=context, access_log=False
    )
    context.start_in_thread()
    try:
        page = browser.new_page()
        page.goto(server.url)
        data = os.urandom(SIZE)
        page.set_input_files(
            "#file",
            files=[{"name": "big.bin", "mimeType": "application/octet-stream", "buffer": data}],
        )
        page.click("#send")
        page.wait_for_function("window.uploadDone === true", timeout=30_000)
        seen = page.evaluate("window.progressSeen")
        status = page.inner_text("#status")
        bar = page.eval_on_selector("#bar", "bar => bar.value")
        page.close()
    finally:
        context.join(5)
    assert status == "Saved big.bin"
    assert bar == 100
    assert seen[-1] == 100
    middle = [value for value in seen if 0 < value < 100]
    assert len(middle) >= 3, seen  # the bar moved through several values
    assert seen == sorted(seen)  # and never backwards
    assert (tmp_path / "big.bin").read_bytes() == data
