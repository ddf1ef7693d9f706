"""Uploads with a live progress bar, measured by the server.

The page posts the chosen files with ``XMLHttpRequest`` to
``/upload?_upload_id=ID`` and, while the body streams in, polls
``/_upload_progress?id=ID``: the bar shows what the *server* has received
(the browser's own upload events only say what left the browser).  Files are
saved in ``uploads/`` beside this script (or the directory given).

    python examples/upload.py [--rate BYTES_PER_SECOND] [DIRECTORY]

``--rate`` reads uploads no faster than that, so the bar can be watched on
a fast local network; the browser test uses it the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import dibble
from dibble.files import UploadProgress
from dibble.templates import TemplateLoader
from dibble.text import human_size
from dibble.uploads import Upload, safe_filename

TEMPLATES = TemplateLoader(Path(__file__).parent / "templates")
MAX_UPLOAD = 2 * 1024 * 1024 * 1024


class UploadDemo(dibble.Plugin):
    """The form page and the upload target."""

    def __init__(self, directory: Path, progress: UploadProgress) -> None:
        self.directory = directory
        self.progress = progress

    def onHome(self) -> dibble.Response:
        page = TEMPLATES.render("upload.html", TITLE="Upload files", MAX=human_size(MAX_UPLOAD))
        # The progress endpoint answers only the client holding this cookie.
        return dibble.Response(page, headers=self.progress.cookie_headers(self.request))

    @dibble.blocking  # saving may copy a large file: not on the event loop
    @dibble.max_body_size(MAX_UPLOAD)
    def onUpload(self, files: list[Upload]) -> dict[str, Any]:
        saved = []
        for upload in files:
            name = safe_filename(upload.filename) or "upload.bin"
            if name.startswith("."):
                name = "_" + name
            upload.save(self.directory / name)
            saved.append({"name": name, "size": upload.size})
        return {"saved": saved}


def make_server(
    address: int | tuple[str, int] = 8888,
    directory: Path | None = None,
    *,
    rate: int | None = None,
    context: dibble.Context | None = None,
    **settings: Any,
) -> dibble.HTTPServer:
    """The demo server; ``rate`` limits how fast uploads are read (bytes per second)."""
    directory = directory or Path(__file__).parent / "uploads"
    directory.mkdir(parents=True, exist_ok=True)
    server = dibble.HTTPServer(address, context, **settings)
    if rate is not None:
        server.configure_uploads(max_rate=rate)
    progress = server.upload_progress()
    server.register(UploadDemo(directory, progress))
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, help="where uploads are saved")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--rate", type=int, help="read uploads at most this fast (bytes/s)")
    args = parser.parse_args()
    make_server(args.port, args.directory, rate=args.rate)
    dibble.run(launch_browser=False)


if __name__ == "__main__":
    main()
