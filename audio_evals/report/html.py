"""A self-contained HTML page of a report: inline CSS, the chart inlined as base64, no network.

The markdown is rendered by markdown-it-py (a maintained CommonMark implementation), so the
page shows what any Markdown viewer shows of ``report.md``.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from markdown_it import MarkdownIt

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; color: #1f2328; line-height: 1.5; }
h1, h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfbfc; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 90%; background: #f6f8fa;
       padding: .1em .3em; border-radius: 4px; }
blockquote { color: #59636e; border-left: 4px solid #d0d7de; margin: 0; padding: 0 1em; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
"""

#: CommonMark with GitHub tables; raw HTML in the markdown is escaped, never passed through
#: (report cells carry error messages and model names).
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def _figure(png_path: str) -> str:
    encoded = base64.b64encode(Path(png_path).read_bytes()).decode("ascii")
    return f'<figure><img alt="results chart" src="data:image/png;base64,{encoded}"></figure>'


def render_html(markdown_text: str, chart_png_path: str | None, title: str) -> str:
    """The report as one HTML file a person can open offline; the chart sits under the header."""
    body = _MARKDOWN.render(markdown_text)
    if chart_png_path:
        figure = _figure(chart_png_path)
        body, placed = re.subn(r"<hr\s*/?>", lambda m: m.group(0) + "\n" + figure, body, count=1)
        body = body if placed else body + "\n" + figure
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
