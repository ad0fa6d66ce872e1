"""The sample viewer: one self-contained HTML page per run, and one per pair of runs compared.

The rows are embedded as compact JSON (gzipped) and a small script (``view_assets/view.js``)
renders a hundred at a time with filters and sorting, so a 10k-sample run is a page of about
1.5 MB that opens at once, offline (no CDN, clips referenced, never inlined). Every text reaches
the page as data that the script sets as text, never as markup: hypotheses are untrusted.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from audio_evals import storage
from audio_evals.records import SampleRow
from audio_evals.report.compare import Comparison, MetricDifference, compare_runs
from audio_evals.report.samples import FileLinks, RunRecord, read_run, sample_record
from audio_evals.run.summary import VIEW_FILE, Measure, format_value

_ASSETS = Path(__file__).with_name("view_assets")
_LEGEND = ('<p class="legend">Edits on the metric\'s tokens: <span class="sub">substituted</span> '
           '<span class="del">deleted</span> <span class="ins">inserted</span></p>')


def _legend(records: list[dict[str, Any]]) -> str:
    """The colours of the edits, where some sample has edits to colour."""
    return _LEGEND if any("al" in r for r in records) else ""


def _ci(ci: list[float] | tuple[float, float] | None) -> str:
    return "—" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A table of already escaped cells."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _measure(name: str, higher_is_better: bool | None, group: str | None) -> str:
    return html.escape(Measure(name=name, higher_is_better=higher_is_better).measure + (f" ({group})" if group else ""))


def _run_line(run: RunRecord, links: FileLinks, tag: str | None = None) -> str:
    """Which run (``tag``ged and named in a comparison), and links to the files it wrote."""
    files = [(name, links(f)) for name, f in run.summary.files.model_dump().items() if f and name != "view"]
    anchors = " · ".join(f'<a href="{html.escape(url)}">{html.escape(name)}</a>' for name, url in files if url)
    name = f"<span class=\"tag\">{tag}</span><b>{html.escape(run.label)}</b> — " if tag else ""
    generation = ", ".join(f"{k}={v}" for k, v in run.summary.model.generation.items())
    settings = f" · {html.escape(generation)}" if generation else ""
    return (f"<p class=\"run\">{name}run <code>{html.escape(run.run_id)}</code>, "
            f"{html.escape(str(run.summary.created_at or ''))}{settings} · {anchors}</p>{_request(run)}")


def _request(run: RunRecord) -> str:
    """What every sample was sent: the prompt's messages (``{{audio}}`` where the clip goes) and the
    parameters of each model call, exactly as the summary records them; and the command giving the run again."""
    summary = run.summary
    sent = json.dumps({"prompt": summary.prompt.name, "messages": summary.prompt.messages,
                       "parameters": summary.model.sent or summary.model.generation}, indent=1, ensure_ascii=False)
    command = f"<p>command: <code>{html.escape(summary.eval_cli)}</code></p>" if summary.eval_cli else ""
    return f"<details class=\"request\"><summary>request sent per sample</summary><pre>{html.escape(sent)}</pre></details>{command}"


def _counts(rows: list[SampleRow]) -> str:
    statuses = Counter(row.status for row in rows)
    return f"{len(rows)} samples: " + ", ".join(f"{status} {n}" for status, n in statuses.most_common())


def _run_header(run: RunRecord, links: FileLinks, legend: str) -> str:
    metrics = [[html.escape(m.measure_label), m.value_text, m.ci_text, str(m.n), str(m.failed), str(m.unparsed)]
               for m in run.summary.metrics]
    return (f"<h1>{html.escape(run.label)}</h1>{_run_line(run, links)}"
            + _table(["measure", "performance", "95% CI", "n", "failed", "unparsed"], metrics)
            + f"<p>{html.escape(_counts(run.rows))}</p>{legend}")


def _difference_row(d: MetricDifference) -> list[str]:
    measure = _measure(d.name, d.higher_is_better, d.group)
    changes = d.changes or {}
    return [measure, format_value(d.before), format_value(d.after), format_value(d.difference), _ci(d.ci95), html.escape(d.note or d.verdict),
            str(d.n), *(str(changes.get(c, "—")) for c in ("better", "worse", "same"))]


def _comparison_header(comparison: Comparison, links: tuple[FileLinks, FileLinks], legend: str) -> str:
    a, b = comparison.before, comparison.after
    changes = Counter(p.change for p in comparison.pairs)
    rows = [_difference_row(d) for d in comparison.metrics]
    return (f"<h1>{html.escape(a.label)} vs {html.escape(b.label)}</h1>"
            f"<div class=\"runs\">{_run_line(a, links[0], 'A')}{_run_line(b, links[1], 'B')}</div>"
            + _table(["measure", "A", "B", "B − A", "95% CI of B − A (paired)", "verdict", "n paired",
                      "samples better", "worse", "same"], rows)
            + f"<p>{len(comparison.pairs)} samples: "
            + ", ".join(f"{html.escape(c)} {changes[c]}" for c in changes) + "</p>" + legend)


def _factor_audio(rows: list[dict[str, Any]]) -> str:
    """Strip the clips' common folder from each row (the page stores it once)."""
    prefix = os.path.commonprefix([r["a"] for r in rows if "a" in r] or [""])
    prefix = prefix[: prefix.rfind("/") + 1]
    for row in rows:
        if "a" in row:
            row["a"] = row["a"][len(prefix):]
    return prefix


def packed(payload: dict[str, Any]) -> str:
    """The rows as the page holds them: compact JSON, gzipped, base64 (a 10k page: ~1/4 of the JSON).

    The script unpacks it with the browser's own DecompressionStream; base64 has no ``<``, so no
    text of a sample can end the script element.
    """
    blob = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(gzip.compress(blob, compresslevel=6, mtime=0)).decode("ascii")


def _page(title: str, header: str, payload: dict[str, Any]) -> str:
    css = (_ASSETS / "view.css").read_text(encoding="utf-8")
    script = (_ASSETS / "view.js").read_text(encoding="utf-8")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n<header>{header}</header>\n"
            "<nav id=\"controls\"></nav>\n<main id=\"samples\"></main>\n<nav id=\"pager\"></nav>\n"
            f"<script id=\"view-data\" type=\"application/gzip\">{packed(payload)}</script>\n"
            f"<script>{script}</script>\n</body>\n</html>\n")


def render_view(run: RunRecord, page_dir: str) -> str:
    """The page of one run, for a file in ``page_dir`` (clips are addressed from there)."""
    links, causes = FileLinks(run, page_dir), {}
    rows = [sample_record(row, links, causes) for row in run.rows]
    payload = {"kind": "run", "base": _factor_audio(rows), "causes": list(causes), "rows": rows}
    return _page(f"Samples of {run.label}", _run_header(run, links, _legend(rows)), payload)


def render_comparison(comparison: Comparison, page_dir: str) -> str:
    """The page comparing run B (``comparison.after``) with run A, sample by sample."""
    links = (FileLinks(comparison.before, page_dir), FileLinks(comparison.after, page_dir))
    causes: dict[str, int] = {}
    rows = []
    for pair in comparison.pairs:
        sides = {k: sample_record(row, link, causes) for k, row, link in
                 (("A", pair.before, links[0]), ("B", pair.after, links[1])) if row is not None}
        first = sides.get("A") or sides["B"]
        shared = {k: first[k] for k in ("i", "l", "a", "r") if k in first}
        for side in sides.values():
            for key in ("i", "l", "a"):
                side.pop(key, None)
            if side.get("r") == shared.get("r"):
                side.pop("r", None)
        gain = None if pair.gain is None else round(pair.gain, 2)
        rows.append({**shared, "k": pair.change, **({"g": gain} if gain is not None else {}), **sides})
    payload = {"kind": "compare", "base": _factor_audio(rows), "causes": list(causes), "rows": rows}
    title = f"{comparison.before.label} vs {comparison.after.label}"
    legend = _legend([side for row in rows for side in (row.get("A"), row.get("B")) if side])
    return _page(title, _comparison_header(comparison, links, legend), payload)


def _target(out: str | None, default_dir: str, name: str) -> str:
    """``out`` when it names a file, ``out/name`` when it is a folder, else ``default_dir/name``."""
    if out is None:
        return storage.join(default_dir, name)
    if out.endswith("/") or (not storage.is_remote(out) and os.path.isdir(out)):
        return storage.join(out, name)
    return out


def _page_dir(path: str) -> str:
    return os.path.dirname(path) or "."


def write_view(run_path: str, out: str | None = None) -> str:
    """Write the page of the run at ``run_path`` (default: ``view.html`` in its folder); its path."""
    run = read_run(run_path)
    target = _target(out, run.folder, VIEW_FILE)
    storage.write_text(target, render_view(run, _page_dir(target)))
    return target


def comparison_name(before_id: str, after_id: str) -> str:
    return f"compare-{before_id}-{after_id}.html"


def write_comparison(before_path: str, after_path: str, out: str | None = None) -> str:
    """Write the page comparing run B (``after_path``) with run A (default: in the current folder)."""
    return write_compared(compare_runs(read_run(before_path), read_run(after_path)), out)


def write_compared(comparison: Comparison, out: str | None = None) -> str:
    """Write the page of ``comparison`` (default: in the current folder); its path."""
    target = _target(out, ".", comparison_name(comparison.before.run_id, comparison.after.run_id))
    storage.write_text(target, render_comparison(comparison, _page_dir(target)))
    return target
