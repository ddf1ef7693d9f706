"""The built-in error page, plain enough to render even when nothing else works."""

from __future__ import annotations

from html import escape

from ..http import reason_phrase


def error_page(status: int, message: str = "", detail: str | None = None) -> str:
    """An HTML page for ``status``; ``detail`` (a traceback) only in test mode."""
    reason = escape(reason_phrase(status))
    parts = [
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>",
        f"<title>{status} {reason}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:3em;color:#222}"
        "h1{font-size:1.4em}pre{background:#f4f4f4;padding:1em;overflow:auto}</style>",
        f"</head><body><h1>{status} {reason}</h1>",
    ]
    if message:
        parts.append(f"<p>{escape(message)}</p>")
    if detail:
        parts.append(f"<pre>{escape(detail)}</pre>")
    parts.append("<hr><p><small>dibble</small></p></body></html>\n")
    return "".join(parts)
