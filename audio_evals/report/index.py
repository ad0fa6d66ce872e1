"""``index.html`` of a results folder: every run under it in one page, newest first.

Rewritten by the report stage each time a run finishes (and by ``audio-evals index``): model,
dataset, headline figure, n, date, whether the run may stand for a figure (``unusable`` says why
not) and how it differs from the default evaluation, with links to its sample viewer and report,
and the ``audio-evals view A B`` command comparing it with the previous run of the same evaluation.
Every text comes from data, so all of it is escaped; links are relative, so the folder can be
served or copied as it is.
"""

from __future__ import annotations

import html
import os
import posixpath

from audio_evals import storage
from audio_evals.report.runs import Evaluation, record_problem, setting, unusable
from audio_evals.run.summary import RunSummary, read_summary, summaries_under

INDEX_FILE = "index.html"

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#1f2328}table{border-collapse:collapse;font-size:14px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}
.bad{color:#b42318}code{font-size:90%}"""


def _link(root: str, summary_path: str, name: str | None) -> str:
    if not name:
        return ""
    path = posixpath if storage.is_remote(root) else os.path
    target = path.relpath(path.join(path.dirname(summary_path), name), root)
    return f'<a href="{html.escape(target)}">{html.escape(name.removesuffix(".html").removesuffix(".md"))}</a>'


def _row(root: str, path: str, summary: RunSummary, previous: RunSummary | None) -> str:
    head = summary.headlines[0] if summary.headlines else None
    figure = f"{head.label} {head.value_text}" if head else "—"
    why = unusable(summary)
    status = summary.status + (f' <span class="bad">({html.escape(why)})</span>' if why else "")
    files = summary.files
    links = " · ".join(x for x in (_link(root, path, files.view), _link(root, path, files.report)) if x)
    compare = (f"<code>audio-evals view {html.escape(previous.run_id or '')} {html.escape(summary.run_id or '')}</code>"
               if previous is not None else "")
    cells = [html.escape(summary.model.name), html.escape(summary.dataset.name), html.escape(figure),
             str(head.n if head else summary.counts.scored), html.escape(summary.created_at or ""), status,
             html.escape(setting(summary)) or "default", links, compare]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def render_index(root: str) -> str:
    """The page listing every run under ``root`` (``<model>/<dataset>/<run>/summary.json``)."""
    runs: list[tuple[str, RunSummary]] = []
    skipped = []
    for path in summaries_under(root, depth=3):
        try:
            runs.append((path, read_summary(path)))
        except (OSError, ValueError) as e:
            skipped.append(f"<li>{html.escape(path)}: {html.escape(record_problem(e))}</li>")
    runs.sort(key=lambda pair: (pair[1].created_at or "", pair[1].run_id or ""))  # ids begin with the microsecond
    previous: dict[Evaluation, RunSummary] = {}
    rows = []
    for path, summary in runs:  # oldest first, so each run knows the one before it
        key = Evaluation.of(summary)
        rows.append(_row(root, path, summary, previous.get(key)))
        previous[key] = summary
    header = "".join(f"<th>{h}</th>" for h in ("model", "dataset", "headline", "n", "date", "status", "options",
                                                 "files", "compare with the previous run"))
    unreadable = f"<h2>Unreadable summaries</h2><ul>{''.join(skipped)}</ul>" if skipped else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Runs in {html.escape(root)}"
            f"</title><style>{_CSS}</style></head><body><h1>Runs in {html.escape(root)}</h1>"
            f"<p>{len(runs)} runs, newest first.</p><table><thead><tr>{header}</tr></thead><tbody>"
            f"{''.join(reversed(rows))}</tbody></table>{unreadable}</body></html>\n")


def write_index(root: str) -> str:
    """Write ``root``/index.html (atomically); its path."""
    target = storage.join(root, INDEX_FILE)
    storage.write_text(target, render_index(root))
    return target
