"""A nightly observation report: a template with blocks nested three deep.

Nights contain frames, frames contain quality flags; the page is
``templates/report.html``.  Run ``python examples/report.py`` and open
http://localhost:8888/ (``/?band=r`` shows one filter).

The rendering is a plain function, :func:`render_report`, so it can be
tested without a server; the plugin only turns the query into arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dibble
from dibble.colour import darken
from dibble.html import TOOLTIP_CSS, select, tooltip
from dibble.templates import TemplateLoader
from dibble.text import human_size

TEMPLATES = TemplateLoader(Path(__file__).parent / "templates")

FLAG_HELP = {
    "saturated": "Some pixels reached the detector's full well; photometry is unreliable.",
    "satellite": "A satellite trail crosses the frame.",
    "focus": "The point-spread function is wider than the night's median.",
}

BAND_COLOURS = {"u": "#e8e0ff", "g": "#e0ffe4", "r": "#ffe4e0", "i": "#fff4d8"}


@dataclass(frozen=True)
class Frame:
    filename: str
    band: str
    exposure: float
    size: int
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Night:
    date: str
    observer: str
    frames: tuple[Frame, ...]


SAMPLE_NIGHTS = (
    Night(
        "2024-03-11",
        "A. Astronomer",
        (
            Frame("OMEGA.2024-03-11T01:02:03.fits", "r", 360.0, 268_697_600),
            Frame("OMEGA.2024-03-11T01:09:44.fits", "g", 300.0, 268_697_600, ("satellite",)),
            Frame(
                "OMEGA.2024-03-11T02:15:00.fits", "r", 30.5, 268_697_600, ("saturated", "focus")
            ),
        ),
    ),
    Night(
        "2024-03-12",
        "B. <Observer> & co",
        (Frame("OMEGA.2024-03-12T00:30:10.fits", "i", 600.0, 268_697_600),),
    ),
)


def render_report(
    nights: Sequence[Night],
    *,
    band: str = "all",
    title: str = "Observation report",
    observatory: str = "the VLT Survey Telescope",
) -> str:
    """The report page for ``nights``, showing only frames in ``band`` unless it is ``"all"``."""
    bands = sorted({frame.band for night in nights for frame in night.frames})
    night_rows = []
    for night in nights:
        frames = [frame for frame in night.frames if band in ("all", frame.band)]
        if not frames:
            continue
        night_rows.append(
            {
                "DATE": night.date,
                "OBSERVER": night.observer,
                "COUNT": len(frames),
                "TOTAL_SIZE": human_size(sum(frame.size for frame in frames)),
                "FRAME": [
                    {
                        "FILENAME": frame.filename,
                        "FILTER": frame.band,
                        "EXPOSURE": f"{frame.exposure:.1f}",
                        "SIZE": human_size(frame.size),
                        # Flagged frames get a darker shade of their band's colour.
                        "BACKGROUND": darken(BAND_COLOURS.get(frame.band, "#ffffff"), 0.9)
                        if frame.flags
                        else BAND_COLOURS.get(frame.band, "#ffffff"),
                        "FLAG": [
                            {"FLAG": tooltip(flag, FLAG_HELP.get(flag, "No description."))}
                            for flag in frame.flags
                        ],
                    }
                    for frame in frames
                ],
            }
        )
    return TEMPLATES.get("report.html").render(
        TITLE=title,
        STYLE=TOOLTIP_CSS,
        FILTER_SELECT=select("band", ["all", *bands], selected=band),
        NIGHT=night_rows,
        NO_NIGHTS=not night_rows,
        BAND=band,
        OBSERVATORY=observatory,
    )


class Report(dibble.Plugin):
    """Serves the report at ``/``."""

    def onHome(self, band: str = "all") -> str:
        return render_report(SAMPLE_NIGHTS, band=band)


if __name__ == "__main__":
    server = dibble.HTTPServer(8888)
    server.register(Report())
    dibble.run()
