"""A run's samples as the viewer shows them: edits aligned, causes grouped, files addressed.

A run folder (``summary.json`` and ``samples.jsonl``, local or in a store) becomes short records
with one- or two-letter keys and no empty fields: the page embeds them as JSON, so what each
field costs is paid 10k times.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jiwer

from audio_evals import storage
from audio_evals.paths import resolve_resource
from audio_evals.records import SampleRow
from audio_evals.report.runs import record_problem
from audio_evals.run.summary import SUMMARY_FILE, RunSummary

#: Characters kept of one text field: long replies would make a 10k page large; samples.jsonl keeps all.
MAX_TEXT = 2000
#: Paths and numbers inside an error: left out of its cause so that rows failing alike share one.
_VARIABLE = re.compile(r"\S*[/\\]\S*|\d+(?:\.\d+)?")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")

#: The tokens are already normalised and space-joined: jiwer only splits them.
_WORDS = jiwer.ReduceToListOfListOfWords()

Segment = str | list[str]


@dataclass(frozen=True)
class RunRecord:
    """A finished run as it was written: its folder, its summary and its rows in file order."""

    folder: str
    summary: RunSummary
    rows: list[SampleRow]

    @property
    def label(self) -> str:
        return f"{self.summary.model.name} on {self.summary.dataset.name}"

    @property
    def run_id(self) -> str:
        return self.summary.run_id


def read_run(path: str, summary: RunSummary | None = None) -> RunRecord:
    """The run in folder ``path`` (or whose ``summary.json`` is ``path``).

    ``summary`` is given by a caller that holds it before it is written (the report stage).
    """
    path = path.rstrip("/")
    folder = (os.path.dirname(path) or ".") if os.path.basename(path) == SUMMARY_FILE else path
    if summary is None:
        summary_path = storage.join(folder, SUMMARY_FILE)
        if not storage.exists(summary_path):
            raise FileNotFoundError(f"{folder} is not a run folder: it has no {SUMMARY_FILE}")
        try:
            summary = RunSummary.model_validate(storage.read_json(summary_path))
        except ValueError as e:  # not JSON, or a field that fails validation (pydantic's error is a ValueError)
            raise ValueError(f"{summary_path} cannot be read: {record_problem(e)}") from None
    samples_path = storage.join(folder, summary.files.samples)
    rows = []
    for number, row in enumerate(storage.read_jsonl(samples_path), 1):
        try:
            rows.append(SampleRow.model_validate(row))
        except ValueError as e:
            raise ValueError(f"{samples_path} row {number} cannot be read: {record_problem(e)}") from None
    return RunRecord(folder, summary, rows)


def _joined(tokens: list[str]) -> str:
    """Tokens as text: CJK characters side by side, everything else separated by spaces."""
    if not any(_CJK.match(token) for token in tokens):
        return " ".join(tokens)
    text = ""
    for token in tokens:
        if text and not (_CJK.match(text[-1]) and _CJK.match(token)):
            text += " "
        text += token
    return text


def alignment(reference: str, hypothesis: str) -> list[Segment]:
    """The metric's tokens (space-joined) aligned as jiwer aligns them for the edit counts.

    Equal runs are plain text; edits are ``["s", ref, hyp]``, ``["d", ref]`` and ``["i", hyp]``.
    """
    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return [["i", _joined(hyp)]] if hyp else []
    segments: list[Segment] = []
    for chunk in jiwer.process_words(reference, hypothesis, _WORDS, _WORDS).alignments[0]:
        r, h = _joined(ref[chunk.ref_start_idx:chunk.ref_end_idx]), _joined(hyp[chunk.hyp_start_idx:chunk.hyp_end_idx])
        segments.append({"equal": r, "substitute": ["s", r, h], "delete": ["d", r], "insert": ["i", h]}[chunk.type])
    return segments


def cause(row: SampleRow) -> str | None:
    """Why a row is not a plain scored sample (failure, skip, drop, unparsed answer), without
    the paths and numbers that differ from row to row; None for an ``ok`` row."""
    if row.status == "ok":
        return None
    text = row.error or (row.explanation if row.status == "unparsed" else None) or row.status
    text = _VARIABLE.sub("…", " ".join(str(text).split()))[:200]
    return f"{row.stage}: {text}" if row.stage else text


def failure_causes(rows: Iterable[SampleRow], top: int = 5) -> tuple[list[tuple[str, int]], int]:
    """The ``top`` most frequent causes of failed rows with their counts, most frequent first,
    and how many failed rows the other causes account for: a run's failures at a glance."""
    ranked = Counter(cause(row) for row in rows if row.status == "failed").most_common()
    return ranked[:top], sum(n for _, n in ranked[top:])


def _text(value: Any) -> str | None:
    """A field as display text, cut at ``MAX_TEXT``; several references are joined by `` | ``."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, list):
        value = " | ".join(str(v) for v in value)
    elif not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False)
    if len(value) <= MAX_TEXT:
        return value
    return value[:MAX_TEXT] + f"… ({len(value) - MAX_TEXT} more characters in samples.jsonl)"


def _detail(stats: dict[str, Any]) -> str | None:
    """The sample's sufficient statistics in words: its edits, or its verdict."""
    if "edits" in stats:
        tokens = stats.get("ref_words", stats.get("ref_chars"))
        kinds = ", ".join(f"{kind} {stats[kind]:g}" for kind in ("sub", "del", "ins"))
        return f"edits {stats['edits']:g} of {tokens:g} reference tokens: {kinds}"
    if "correct" in stats:
        return "correct" if stats["correct"] else "wrong"
    if "score" in stats:
        return f"rating {stats['score']:g}"
    return None


def _number(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def _compact(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None and v != [] and v != ""}


def _texts(row: SampleRow) -> dict[str, Any]:
    """Reference and hypothesis: aligned when the metric counted token edits, else as compared."""
    hypothesis, reference = row.hypothesis, row.reference
    nh, nr = row.normalized_hypothesis, row.normalized_reference
    texts = {"r": _text(reference), "h": _text(hypothesis),
             "t": _text(row.model_text) if row.model_text != hypothesis else None}
    if "edits" in row.stats and isinstance(nh, str) and isinstance(nr, str):
        texts["al"] = alignment(nr, nh)
    else:
        texts["nr"] = _text(nr) if nr != reference else None
        texts["nh"] = _text(nh) if nh != hypothesis else None
    return texts


def sample_record(row: SampleRow, links: "FileLinks", causes: dict[str, int]) -> dict[str, Any]:
    """One row as the page holds it; ``causes`` numbers each distinct cause (shared by the page, for the
    filter), ``e`` is the row's own full error (paths and line numbers kept), ``lt`` its latency,
    ``p`` the prompt sent."""
    why = cause(row)
    secondary = [[name, _number(verdict.value), _text(verdict.explanation)]
                 for name, verdict in (row.secondary or {}).items()]
    return _compact({
        "i": row.id, "s": row.status, "l": row.lang,
        "a": links(row.audio), "ga": links(row.generated_audio),
        "m": row.metric, "v": _number(row.value), "d": _detail(row.stats),
        "c": causes.setdefault(why, len(causes)) if why else None,
        "e": _text(row.error) if row.error and why != f"{row.stage}: {' '.join(row.error.split())}" else None,
        "lt": _number(row.latency_s), "p": _text(row.prompt),
        **_texts(row), "x": _text(row.explanation), "sec": secondary,
    })


def _within(root: str, path: str) -> bool:
    return os.path.commonpath([root, path]) == root


class FileLinks:
    """Addresses of a run's files (clips, report) from a page in ``page_dir``.

    Relative inside the run or the dataset's folder, which travel with the page; else a file://
    URL (a clip in the cache); a remote clip by its URL when a browser can fetch it (http/https).
    """

    def __init__(self, run: RunRecord, page_dir: str):
        local = not storage.is_remote(run.folder)
        self.run_folder = os.path.abspath(run.folder) if local else run.folder.rstrip("/")
        self.page_dir = page_dir.rstrip("/") if storage.is_remote(page_dir) else os.path.abspath(page_dir)
        self.page_in_run = self.page_dir == self.run_folder
        self.roots = [self.run_folder] if local else []
        self._folders: dict[str, str] = {}
        source = run.summary.dataset.source
        if source.get("type") == "manifest" and source.get("path"):
            manifest = resolve_resource(source["path"])
            if not storage.is_remote(manifest):
                self.roots.append(os.path.dirname(os.path.abspath(manifest)))

    def __call__(self, path: str | None) -> str | None:
        if not path:
            return None
        if storage.is_remote(path):
            return path if path.startswith(("http://", "https://")) else None
        if not os.path.isabs(path):  # kept in the run folder (generated audio, the report)
            if self.page_in_run:
                return quote(path)
            if storage.is_remote(self.run_folder):
                return None
            path = os.path.join(self.run_folder, path)
        folder, name = os.path.split(os.path.abspath(path))
        if folder not in self._folders:  # 10k clips live in a handful of folders
            self._folders[folder] = self._folder_address(folder)
        return self._folders[folder] + quote(name)

    def _folder_address(self, folder: str) -> str:
        """The address of ``folder`` with a trailing slash, or '' for the page's own folder."""
        if not storage.is_remote(self.page_dir) and any(_within(root, folder) for root in self.roots):
            relative = os.path.relpath(folder, self.page_dir).replace(os.sep, "/")
            return "" if relative == "." else quote(relative) + "/"
        return Path(folder).as_uri().rstrip("/") + "/"
