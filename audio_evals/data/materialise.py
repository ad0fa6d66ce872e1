"""The download stage: resolve a dataset entry into a cached manifest of ``Sample`` rows.

The cache folder is keyed by the entry's spec and its source's content (manifest bytes, folder
listing, hub revision), so an unchanged dataset is never read twice and a changed one never
served stale.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from audio_evals import storage
from audio_evals.data.sources import Row, check_manifest, read_folder, read_manifest
from audio_evals.paths import resolve_resource
from audio_evals.registry.entries import DatasetEntry, FolderSource, HubSource, ManifestSource
from audio_evals.schema import Sample, SampleFailure


@dataclass(frozen=True)
class DatasetRef:
    """Where a materialised dataset lives, with the identity recorded in results."""

    name: str
    samples_path: str
    failures_path: str
    fingerprint: str
    revision: str | None
    n_samples: int
    n_failed: int

    def to_dict(self) -> dict:
        return asdict(self)


def _folder_listing_hash(path: str) -> str:
    entries = []
    for folder, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            file = os.path.join(folder, name)
            st = os.stat(file) if os.path.exists(file) else os.lstat(file)  # a dangling symlink: the link
            entries.append((os.path.relpath(file, path), st.st_size, st.st_mtime_ns))
    return storage.stable_hash(entries)


def source_revision(entry: DatasetEntry) -> str:
    """A content identity of the source: changes whenever the data could have changed."""
    source = entry.source
    if isinstance(source, ManifestSource):
        return "sha256:" + storage.sha256(resolve_resource(source.path))
    if isinstance(source, FolderSource):
        return "listing:" + _folder_listing_hash(source.path)
    from audio_evals.data.hub import hub_revision

    return hub_revision(source.model_dump()) or f"unpinned:{source.repo}"


def check_source(entry: DatasetEntry) -> None:
    """Fail at once, before any work, when the source cannot be a dataset (a manifest that is not JSONL)."""
    if isinstance(entry.source, ManifestSource):
        check_manifest(resolve_resource(entry.source.path))


def source_fingerprint(entry: DatasetEntry, limit: int | None = None) -> str:
    """Cache key of the download stage: spec + limit + content revision."""
    return storage.stable_hash([entry.model_dump(mode="json"), limit, source_revision(entry)])


def _rows(entry: DatasetEntry, cache_dir: str, limit: int | None) -> Iterator[Row]:
    source = entry.source
    if isinstance(source, ManifestSource):
        yield from read_manifest(source, resolve_resource(source.path), entry.lang)
    elif isinstance(source, FolderSource):
        yield from read_folder(source, entry.lang)
    elif isinstance(source, HubSource):
        from audio_evals.data.hub import iter_hub_samples

        spec = source.model_dump()
        spec["lang"] = source.lang or entry.lang
        yield from iter_hub_samples(spec, os.path.join(cache_dir, "hub-audio"), limit=limit)


def _with_fields(sample: Sample, mapping: dict[str, str]) -> Sample:
    """Build prompt fields from source columns (``"A,B,C,D"`` gathers columns into a list)."""
    if not mapping:
        return sample
    fields = dict(sample.fields)
    for name, columns in mapping.items():
        cols = [c.strip() for c in columns.split(",")]
        fields[name] = [fields.get(c) for c in cols] if len(cols) > 1 else fields.get(cols[0])
    return Sample(id=sample.id, audio=sample.audio, reference=sample.reference, lang=sample.lang, fields=fields)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def materialise(entry: DatasetEntry, cache_dir: str, limit: int | None = None) -> DatasetRef:
    """Write ``samples.jsonl`` and ``failures.jsonl`` for the entry (first ``limit`` rows)."""
    revision = source_revision(entry)
    fingerprint = storage.stable_hash([entry.model_dump(mode="json"), limit, revision])
    folder = storage.join(cache_dir, "datasets", f"{_safe(entry.name)}-{fingerprint[:16]}")
    samples_path = storage.join(folder, "samples.jsonl")
    failures_path = storage.join(folder, "failures.jsonl")
    meta_path = storage.join(folder, "dataset.json")
    if storage.exists(meta_path):
        return DatasetRef(**storage.read_json(meta_path))
    failures: list[dict] = []  # bad rows only: few, kept for their own file

    def samples() -> Iterator[dict]:
        """Good rows, streamed straight to disk so memory stays flat as the dataset grows."""
        taken = 0
        for row in _rows(entry, cache_dir, limit):
            if limit is not None and taken >= limit:
                break
            taken += 1
            if isinstance(row, SampleFailure):
                failures.append(row.to_dict())
            else:
                yield _with_fields(row, entry.fields).to_dict()

    n_samples = storage.write_jsonl(samples_path, samples())
    storage.write_jsonl(failures_path, failures)
    ref = DatasetRef(
        name=entry.name,
        samples_path=samples_path,
        failures_path=failures_path,
        fingerprint=fingerprint,
        revision=revision,
        n_samples=n_samples,
        n_failed=len(failures),
    )
    storage.write_json(meta_path, ref.to_dict())
    return ref
