"""``index.html`` of a results folder: every run under it in one page, newest first.

Rewritten by the report stage each time a run finishes (and by ``audio-evals index``): model,
dataset, headline figure, n, date, whether the run may stand for a figure (``unusable`` says why
not) and how it differs from the default evaluation, with links to its sample viewer and report,
and to the page comparing it with the previous run of the same evaluation (the report stage writes
that page into the run folder; for a run made before it did, the ``audio-evals view A B`` command).
Every text comes from data, so all of it is escaped; links are relative, so the folder can be
served or copied as it is.
"""

from __future__ import annotations

import html
import os
import posixpath
from dataclasses import dataclass

from audio_evals import storage
from audio_evals.report.runs import Evaluation, read_runs, setting, unusable
from audio_evals.report.view import comparison_name
from audio_evals.run.summary import RunSummary

INDEX_FILE = "index.html"


@dataclass(frozen=True)
class Listing:
    """The runs under a results folder, oldest first, each with the one before it of the same evaluation."""

    runs: list[tuple[str, RunSummary, tuple[str, RunSummary] | None]]
    unreadable: list[tuple[str, str]]
    #: The comparison pages in run folders (one listing, not a lookup per run).
    pages: frozenset[str] = frozenset()

    def previous(self, run_id: str) -> tuple[str, RunSummary] | None:
        """The run before run ``run_id`` of the same evaluation: its summary's path and the summary."""
        return next((before for _, summary, before in self.runs if summary.run_id == run_id), None)


def list_runs(root: str) -> Listing:
    """Every ``<model>/<dataset>/<run>/summary.json`` under ``root``; unreadable ones with the reason."""
    runs, unreadable = read_runs(root)
    runs.sort(key=lambda pair: (pair[1].created_at or "", pair[1].run_id or ""))  # ids begin with the microsecond
    last: dict[Evaluation, tuple[str, RunSummary]] = {}
    listed = []
    for path, summary in runs:
        key = Evaluation.of(summary)
        listed.append((path, summary, last.get(key)))
        last[key] = (path, summary)
    return Listing(listed, unreadable, frozenset(storage.glob(root, f"*/*/*/{comparison_name('*', '*')}")))


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#1f2328}table{border-collapse:collapse;font-size:14px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}
.bad{color:#b42318}code{font-size:90%}"""


def _link(root: str, summary_path: str, name: str | None, text: str | None = None) -> str:
    if not name:
        return ""
    path = posixpath if storage.is_remote(root) else os.path
    target = path.relpath(path.join(path.dirname(summary_path), name), root)
    text = text or name.removesuffix(".html").removesuffix(".md")
    return f'<a href="{html.escape(target)}">{html.escape(text)}</a>'


def _compare(root: str, path: str, summary: RunSummary, before: RunSummary, pages: frozenset[str]) -> str:
    """A link to the page comparing the run with ``before``, or (a run older than such pages) the command."""
    name = comparison_name(before.run_id or "", summary.run_id or "")
    if storage.join(storage.parent(path), name) in pages:
        return _link(root, path, name, "compare")
    return f"<code>audio-evals view {html.escape(before.run_id or '')} {html.escape(summary.run_id or '')}</code>"


def _row(root: str, path: str, summary: RunSummary, before: tuple[str, RunSummary] | None,
         pages: frozenset[str]) -> str:
    head = summary.headlines[0] if summary.headlines else None
    figure = f"{head.label} {head.value_text}" if head else "—"
    why = unusable(summary)
    status = summary.status + (f' <span class="bad">({html.escape(why)})</span>' if why else "")
    files = summary.files
    links = " · ".join(x for x in (_link(root, path, files.view), _link(root, path, files.report)) if x)
    compare = _compare(root, path, summary, before[1], pages) if before is not None else ""
    cells = [html.escape(summary.model.name), html.escape(summary.dataset.name), html.escape(figure),
             str(head.n if head else summary.counts.scored), html.escape(summary.created_at or ""), status,
             html.escape(setting(summary)) or "default", links, compare]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def render_index(root: str, listing: Listing | None = None) -> str:
    """The page listing every run under ``root`` (``listing``, when the caller has just made it)."""
    listing = listing or list_runs(root)
    rows = [_row(root, path, summary, before, listing.pages) for path, summary, before in listing.runs]
    header = "".join(f"<th>{h}</th>" for h in ("model", "dataset", "headline", "n", "date", "status", "options",
                                                 "files", "compare with the previous run"))
    skipped = "".join(f"<li>{html.escape(path)}: {html.escape(why)}</li>" for path, why in listing.unreadable)
    unreadable = f"<h2>Unreadable summaries</h2><ul>{skipped}</ul>" if skipped else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Runs in {html.escape(root)}"
            f"</title><style>{_CSS}</style></head><body><h1>Runs in {html.escape(root)}</h1>"
            f"<p>{len(rows)} runs, newest first.</p><table><thead><tr>{header}</tr></thead><tbody>"
            f"{''.join(reversed(rows))}</tbody></table>{unreadable}</body></html>\n")


def write_index(root: str, listing: Listing | None = None) -> str:
    """Write ``root``/index.html (atomically); its path."""
    target = storage.join(root, INDEX_FILE)
    storage.write_text(target, render_index(root, listing))
    return target
