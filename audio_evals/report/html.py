"""A self-contained HTML page of a report: inline CSS, the chart inlined as base64, no network."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

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

_TABLE_CELL = re.compile(r"(?<!\\)\|")


def _inline(text: str) -> str:
    """Code spans verbatim; bold and links in the rest. Everything is escaped first."""
    parts = text.split("`")
    for i, part in enumerate(parts):
        escaped = html.escape(part)
        if i % 2:
            parts[i] = f"<code>{escaped}</code>"
        else:
            escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
            parts[i] = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', escaped)
    return "".join(parts)


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in _TABLE_CELL.split(line.strip().strip("|"))]


def _table(lines: list[str]) -> str:
    head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(lines[0]))
    body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(row)) + "</tr>\n" for row in lines[2:])
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _block(lines: list[str]) -> str:
    """One blank-line-separated block of the subset of markdown our reports use."""
    first = lines[0]
    if first.startswith("|"):
        return _table(lines)
    if first.strip() == "---":
        return "<hr />"
    heading = re.match(r"(#{1,6}) (.*)", first)
    if heading:
        level = len(heading.group(1))
        return f"<h{level}>{_inline(heading.group(2))}</h{level}>"
    if first.startswith("- "):
        return "<ul>\n" + "".join(f"<li>{_inline(line[2:])}</li>\n" for line in lines) + "</ul>"
    if first.startswith("> "):
        return f"<blockquote><p>{_inline(' '.join(line[2:] for line in lines))}</p></blockquote>"
    return f"<p>{_inline(' '.join(lines))}</p>"


def _basic_markdown(text: str) -> str:
    """Enough markdown for our reports when Python-Markdown is absent."""
    blocks, current = [], []
    for line in text.splitlines() + [""]:
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(_block(current))
            current = []
    return "\n".join(blocks)


def _markdown_to_html(text: str) -> str:
    """Python-Markdown when installed (it comes with Prefect's apprise, not as our dependency)."""
    try:
        import markdown
    except ImportError:
        return _basic_markdown(text)
    return markdown.markdown(text, extensions=["tables"])


def _figure(png_path: str) -> str:
    encoded = base64.b64encode(Path(png_path).read_bytes()).decode("ascii")
    return f'<figure><img alt="results chart" src="data:image/png;base64,{encoded}"></figure>'


def render_html(markdown_text: str, chart_png_path: str | None, title: str) -> str:
    """The report as one HTML file a person can open offline; the chart sits under the header."""
    body = _markdown_to_html(markdown_text)
    if chart_png_path:
        figure = _figure(chart_png_path)
        body, placed = re.subn(r"<hr\s*/?>", lambda m: m.group(0) + "\n" + figure, body, count=1)
        body = body if placed else body + "\n" + figure
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
