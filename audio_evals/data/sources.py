"""Read dataset sources row by row, yielding a ``Sample`` or a ``SampleFailure`` per row.

A bad row (not UTF-8, not JSON, missing fields, duplicate id, a path escaping the dataset root)
becomes a recorded failure naming the row and the cause; the rest of the dataset goes on.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterator

from audio_evals import storage
from audio_evals.registry.entries import FolderSource, ManifestSource
from audio_evals.schema import Sample, SampleFailure

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif")
Row = Sample | SampleFailure


def _bad(row_id: str, error: str, audio: str | None = None) -> SampleFailure:
    return SampleFailure(id=row_id, stage="download", error=error, audio=audio)


def resolve_audio(audio: str, root: str, allow_absolute: bool) -> str:
    """The audio location of a manifest row: relative to ``root``, never escaping it.

    Absolute paths and URLs are accepted only with ``allow_absolute``.
    """
    if "://" in audio or os.path.isabs(audio):
        if not allow_absolute:
            raise ValueError(
                f"absolute audio path {audio!r} not allowed for this dataset "
                "(relative paths only; set allow_absolute: true on the source to permit)"
            )
        return audio
    remote = storage.is_remote(root)
    norm = posixpath.normpath(audio) if remote else os.path.normpath(audio)
    if norm == ".." or norm.startswith(("../", "..\\")) or norm.startswith(os.pardir + os.sep):
        raise ValueError(f"audio path {audio!r} escapes the dataset root")
    return storage.join(root, norm)


def read_manifest(source: ManifestSource, manifest_url: str, lang: str | None) -> Iterator[Row]:
    """Rows of a JSONL manifest: ``id``, ``audio``, ``text`` (reference), optional ``lang``."""
    root = posixpath.dirname(manifest_url) if storage.is_remote(manifest_url) else os.path.dirname(
        os.path.abspath(manifest_url)
    )
    seen: dict[str, int] = {}
    for number, raw in enumerate(storage.iter_lines(manifest_url), start=1):
        if not raw.strip():
            continue
        where = f"line-{number}"
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            yield _bad(where, f"manifest line {number} is not UTF-8: {e}")
            continue
        except json.JSONDecodeError as e:
            yield _bad(where, f"manifest line {number} is not valid JSON: {e}")
            continue
        if not isinstance(row, dict):
            yield _bad(where, f"manifest line {number} is not a JSON object")
            continue
        if any(row.get(k) != v for k, v in source.filter.items()):
            continue
        sample_id = str(row.get("id") or "").strip()
        if not sample_id:
            yield _bad(where, f"manifest line {number} has no 'id'")
            continue
        if sample_id in seen:
            yield _bad(sample_id, f"duplicate id (first on manifest line {seen[sample_id]}, again on line {number})")
            continue
        seen[sample_id] = number
        audio = row.get("audio")
        if not isinstance(audio, str) or not audio:
            yield _bad(sample_id, f"manifest line {number} has no 'audio' path")
            continue
        try:
            location = resolve_audio(audio, root, source.allow_absolute)
        except ValueError as e:
            yield _bad(sample_id, str(e), audio)
            continue
        reference = row.get("text", row.get("reference"))
        extra = {k: v for k, v in row.items() if k not in {"id", "audio", "text", "reference", "lang"}}
        yield Sample(id=sample_id, audio=location, reference=reference, lang=row.get("lang") or lang, fields=extra)


def read_folder(source: FolderSource, lang: str | None) -> Iterator[Row]:
    """Audio files under a folder, each with a same-stem ``.txt`` transcript (id = relative stem)."""
    root = os.path.abspath(source.path)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset folder {root!r} does not exist")
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in AUDIO_EXTENSIONS:
                continue
            path = os.path.join(folder, name)
            sample_id = os.path.relpath(os.path.join(folder, stem), root).replace(os.sep, "/")
            txt = os.path.join(folder, stem + ".txt")
            if not os.path.exists(txt):
                yield _bad(sample_id, f"no transcript {stem}.txt beside {name}", path)
                continue
            try:
                reference = open(txt, encoding="utf-8").read().strip()
            except UnicodeDecodeError as e:
                yield _bad(sample_id, f"transcript {stem}.txt is not UTF-8: {e}", path)
                continue
            yield Sample(id=sample_id, audio=path, reference=reference, lang=source.lang or lang)
