"""Read dataset sources row by row, yielding a ``Sample`` or a ``SampleFailure`` per row.

A bad row (not UTF-8, not JSON, missing fields, a non-string or invalid-Unicode field, duplicate
id, a path or symlink escaping the dataset root) becomes a recorded failure naming the row and the
cause; the rest of the dataset goes on. A file that is not a JSONL manifest at all fails as a whole,
before any work (``check_manifest``).
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterator

from audio_evals import storage
from audio_evals.records import Sample, SampleFailure
from audio_evals.registry.entries import FolderSource, ManifestSource

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif")
#: Audio that libsndfile cannot decode: listed as failures saying so, never sent to a model.
UNDECODABLE_EXTENSIONS = (".m4a", ".aac", ".mp4", ".wma")
Row = Sample | SampleFailure
#: How much of a manifest ``check_manifest`` reads to find its first row.
_SNIFF_BYTES = 1 << 20


class ManifestError(ValueError):
    """The file is not a JSONL manifest at all (empty, binary, CSV, a JSON array): no row is usable."""


def check_manifest(url: str) -> None:
    """Raise ``ManifestError`` unless the first non-blank line of ``url`` is a JSON object.

    Reads at most the first MiB, so a huge or binary file costs nothing; a UTF-8 byte-order mark
    and CRLF line ends are accepted, as ``read_manifest`` accepts them.
    """
    if not storage.is_remote(url) and not os.path.isfile(url):
        raise ManifestError(f"manifest {url} {'is not a regular file' if os.path.exists(url) else 'not found'}")
    with storage.open_binary(url) as f:
        head = f.read(_SNIFF_BYTES)
    expected = 'one JSON object per line: {"id": ..., "audio": ..., "text": ...}'
    if not head.strip():
        raise ManifestError(f"manifest {url} is empty ({expected})")
    if b"\0" in head:
        raise ManifestError(f"manifest {url} is binary data (audio?), not JSON lines ({expected})")
    first, newline, _ = head.lstrip().partition(b"\n")
    if not newline and len(head) == _SNIFF_BYTES:
        return  # a first row longer than the sniff: read_manifest judges it
    text = first.decode("utf-8-sig", errors="replace").strip()
    if text.startswith("["):
        raise ManifestError(f"manifest {url} is a JSON array, not JSON lines ({expected})")
    try:
        row = json.loads(text)
    except json.JSONDecodeError:
        row = None
    if not isinstance(row, dict):
        raise ManifestError(f"manifest {url}: its first line is not a JSON object, so it is no JSONL manifest "
                            f"(CSV?) ({expected})")


def _encodable(value: object) -> bool:
    """Whether ``value`` can be written as UTF-8 JSON (a lone surrogate such as ``"\\ud800"`` cannot)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def invalid_unicode(row: dict) -> str | None:
    """The first field of ``row`` that no file can store (its name, escaped), else None."""
    return next((ascii(name)[1:-1] for name, value in row.items() if not _encodable([name, value])), None)


def reference_type_error(reference: object) -> str | None:
    """Why a reference is unusable as such: it must be text or a list of texts (or absent)."""
    if reference is None or isinstance(reference, str):
        return None
    if isinstance(reference, list) and all(isinstance(r, str) for r in reference):
        return None
    kind = "a list holding non-strings" if isinstance(reference, list) else type(reference).__name__
    return f"must be a string or a list of strings, not {kind}"


def _bad(row_id: str, error: str, audio: str | None = None) -> SampleFailure:
    return SampleFailure(id=row_id, stage="download", error=error, audio=audio)


def leaves_root(path: str, root: str) -> bool:
    """Whether local ``path`` lies outside ``root`` once the symlinks in both are followed."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([os.path.realpath(path), real_root]) != real_root


def resolve_audio(audio: str, root: str, allow_absolute: bool) -> str:
    """The audio location of a manifest row: relative to ``root``, never escaping it.

    Absolute paths, URLs and symlinks to files outside ``root`` are accepted only with
    ``allow_absolute``.
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
    if norm == ".." or norm.startswith(("../", "..\\", os.pardir + os.sep)):
        raise ValueError(f"audio path {audio!r} escapes the dataset root")
    location = storage.join(root, norm)
    if not remote and not allow_absolute and leaves_root(location, root):
        raise ValueError(f"audio path {audio!r} is a symlink leaving the dataset root "
                         f"(to {os.path.realpath(location)}); set allow_absolute: true on the source to permit")
    return location


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
            row = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError as e:
            yield _bad(where, f"manifest line {number} is not UTF-8: {e}")
            continue
        except json.JSONDecodeError as e:
            yield _bad(where, f"manifest line {number} is not valid JSON: {e}")
            continue
        if not isinstance(row, dict):
            yield _bad(where, f"manifest line {number} is not a JSON object")
            continue
        field = invalid_unicode(row)
        if field:
            yield _bad(where, f"manifest line {number}: field {field!r} is not valid Unicode (a lone surrogate)")
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
        problem = reference_type_error(reference)
        if problem:
            yield _bad(sample_id, f"manifest line {number}: 'text' {problem}", location)
            continue
        extra = {k: v for k, v in row.items() if k not in {"id", "audio", "text", "reference", "lang"}}
        yield Sample(id=sample_id, audio=location, reference=reference, lang=row.get("lang") or lang, fields=extra)


def read_folder(source: FolderSource, lang: str | None) -> Iterator[Row]:
    """Audio files under a folder, each with a same-stem ``.txt`` transcript (id = relative stem)."""
    root = os.path.abspath(source.path)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset folder {root!r} does not exist")
    if os.path.realpath(root) == os.path.realpath(os.sep):
        raise ValueError(f"dataset folder {source.path} is the filesystem root: refused (it would walk the whole "
                         "disk); name the folder that holds the audio")
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in AUDIO_EXTENSIONS + UNDECODABLE_EXTENSIONS:
                continue
            path = os.path.join(folder, name)
            sample_id = os.path.relpath(os.path.join(folder, stem), root).replace(os.sep, "/")
            if not _encodable(path):
                yield _bad(ascii(sample_id)[1:-1], f"file name {name!a} is not valid UTF-8")
                continue
            if ext.lower() in UNDECODABLE_EXTENSIONS:
                yield _bad(sample_id, f"{name}: {ext.lower()} audio cannot be decoded here (convert it to FLAC or WAV)",
                           path)
                continue
            if not os.path.lexists(path):
                yield _bad(sample_id, f"{name} vanished while the folder was being read", path)
                continue
            if os.path.islink(path) and not os.path.exists(path):
                yield _bad(sample_id, f"{name} is a dangling symlink (to {os.readlink(path)}, which does not exist)",
                           path)
                continue
            if leaves_root(path, root):
                yield _bad(sample_id, f"{name} is a symlink leaving the dataset folder (to {os.path.realpath(path)})",
                           path)
                continue
            txt = os.path.join(folder, stem + ".txt")
            if not os.path.exists(txt):
                yield _bad(sample_id, f"no transcript {stem}.txt beside {name}", path)
                continue
            if not os.path.isfile(txt):
                yield _bad(sample_id, f"transcript {stem}.txt is not a regular file", path)
                continue
            try:
                with open(txt, encoding="utf-8") as f:
                    reference = f.read().strip()
            except UnicodeDecodeError as e:
                yield _bad(sample_id, f"transcript {stem}.txt is not UTF-8: {e}", path)
                continue
            except OSError as e:  # vanished or unreadable since the listing
                yield _bad(sample_id, f"transcript {stem}.txt cannot be read: {e.strerror or e}", path)
                continue
            yield Sample(id=sample_id, audio=path, reference=reference, lang=source.lang or lang)
