"""The download stage: resolve a dataset entry into a cached manifest of ``Sample`` rows.

The cache folder is keyed by the entry's spec and its source's revision (manifest bytes, folder
listing, hub revision); each row records its audio file's content identity, checked on every
later use, so audio replaced behind an unchanged manifest is never served stale.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

from audio_evals import storage
from audio_evals.cache import ContentIndex, read_index, stale, verified, write_jsonl
from audio_evals.data.sources import Row, check_manifest, read_folder, read_manifest
from audio_evals.paths import file_index_path, folder_name, resolve_resource
from audio_evals.records import DatasetRef, Sample, SampleFailure
from audio_evals.registry.entries import DatasetEntry, FolderSource, HubSource, ManifestSource


def _folder_listing_hash(path: str) -> str:
    entries = []
    for folder, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            file = os.path.join(folder, name)
            st = os.stat(file) if os.path.exists(file) else os.lstat(file)  # a dangling symlink: the link
            entries.append((os.path.relpath(file, path), st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return storage.stable_hash(entries)


def source_revision(entry: DatasetEntry) -> str:
    """A content identity of the source: changes whenever the data could have changed."""
    source = entry.source
    if isinstance(source, ManifestSource):
        return "sha256:" + storage.sha256(resolve_resource(source.path))
    if isinstance(source, FolderSource):
        return "listing:" + _folder_listing_hash(source.path)
    from audio_evals.data.hf_datasets import hub_revision

    return hub_revision(source) or f"unpinned:{source.repo}"


def check_source(entry: DatasetEntry) -> None:
    """Fail at once, before any work, when the source cannot be a dataset (a manifest that is not
    JSONL, a folder that is not there). Local only: ``check_reachable`` asks the hub."""
    if isinstance(entry.source, ManifestSource):
        check_manifest(resolve_resource(entry.source.path))
    elif isinstance(entry.source, FolderSource) and not os.path.isdir(entry.source.path):
        raise FileNotFoundError(f"dataset folder {os.path.abspath(entry.source.path)!r} does not exist")


def check_reachable(entry: DatasetEntry) -> None:
    """``check_source``, and for a hub dataset whether its mirror or the hub can serve it (one
    request at most, no retry): an unreachable dataset stops a run before it starts."""
    check_source(entry)
    if isinstance(entry.source, HubSource):
        from audio_evals.data.hf_datasets import check_reachable as check_hub

        check_hub(entry.source)


def _rows(entry: DatasetEntry, cache_dir: str, limit: int | None) -> Iterator[Row]:
    source = entry.source
    if isinstance(source, ManifestSource):
        yield from read_manifest(source, resolve_resource(source.path), entry.lang)
    elif isinstance(source, FolderSource):
        yield from read_folder(source, entry.lang)
    elif isinstance(source, HubSource):
        from audio_evals.data.hf_datasets import iter_hub_samples

        source = source.model_copy(update={"lang": source.lang or entry.lang})
        yield from iter_hub_samples(source, os.path.join(cache_dir, "hub-audio"), limit=limit)


def _with_fields(sample: Sample, mapping: dict[str, str]) -> Sample:
    """Build prompt fields from source columns (``"A,B,C,D"`` gathers columns into a list)."""
    if not mapping:
        return sample
    fields = dict(sample.fields)
    for name, columns in mapping.items():
        cols = [c.strip() for c in columns.split(",")]
        fields[name] = [fields.get(c) for c in cols] if len(cols) > 1 else fields.get(cols[0])
    return Sample(id=sample.id, audio=sample.audio, reference=sample.reference, lang=sample.lang, fields=fields)


def _short(identity: str | None) -> str:
    return identity[:19] if identity else "absent"


def _changed_audio(ref: DatasetRef, index: ContentIndex) -> tuple[str, str] | None:
    """The first sample whose audio file is no longer what was downloaded: (file, why)."""
    for row in storage.read_jsonl(ref.samples_path):
        now = index.identity(row["audio"])
        if now != row.get("audio_identity"):
            return row["audio"], f"{_short(row.get('audio_identity'))} when cached, {_short(now)} now"
    return None


def dataset_record(meta_path: str) -> DatasetRef | None:
    """The dataset record at ``meta_path`` while its counts and files match it; None when absent or stale (said)."""
    meta = read_index(meta_path)
    if meta is None:
        return None
    try:
        ref = DatasetRef.from_dict(meta)
    except (KeyError, TypeError, ValueError):
        stale(meta_path, "is not a dataset record of this version")
        return None
    if (ref.n_samples, ref.n_failed) != (ref.samples.rows, ref.failures.rows):
        stale(meta_path, f"counts {ref.n_samples} samples and {ref.n_failed} bad rows, but its files hold "
                         f"{ref.samples.rows} and {ref.failures.rows}")
        return None
    if not (verified(ref.samples_path, ref.samples) and verified(ref.failures_path, ref.failures)):
        return None
    return ref


def _cached(meta_path: str, index: ContentIndex) -> DatasetRef | None:
    """The downloaded dataset at ``meta_path`` if its files and every audio file are unchanged."""
    ref = dataset_record(meta_path)
    if ref is None:
        return None
    changed = _changed_audio(ref, index)
    if changed:
        stale(ref.samples_path, f"lists audio {changed[0]} that changed since ({changed[1]})")
        return None
    return ref


def download(entry: DatasetEntry, cache_dir: str, limit: int | None = None, fresh: bool = False) -> DatasetRef:
    """Write ``samples.jsonl`` and ``failures.jsonl`` for the entry (first ``limit`` rows).

    A cached copy is used only while its files match their records and every audio file it
    lists still has the identity it had; ``fresh`` rebuilds it and rehashes every audio file.
    """
    revision = source_revision(entry)
    spec = [entry.model_dump(mode="json"), limit, revision]
    folder = storage.join(cache_dir, "datasets", f"{folder_name(entry.name)}-{storage.stable_hash(spec)[:16]}")
    samples_path = storage.join(folder, "samples.jsonl")
    failures_path = storage.join(folder, "failures.jsonl")
    meta_path = storage.join(folder, "dataset.json")
    with ContentIndex(file_index_path(cache_dir), fresh=fresh) as index:
        cached = None if fresh else _cached(meta_path, index)
        if cached is not None:
            return cached
        failures: list[dict] = []  # bad rows only: few, kept for their own file

        def samples() -> Iterator[dict]:
            """Good rows, streamed straight to disk so memory stays flat as the dataset grows."""
            for taken, row in enumerate(_rows(entry, cache_dir, limit)):
                if limit is not None and taken >= limit:
                    break
                if isinstance(row, SampleFailure):
                    failures.append(row.to_dict())
                else:
                    sample = replace(_with_fields(row, entry.fields), audio_identity=index.identity(row.audio))
                    yield sample.to_dict()

        samples_record = write_jsonl(samples_path, samples())
        failures_record = write_jsonl(failures_path, failures)
    ref = DatasetRef(
        name=entry.name,
        samples_path=samples_path,
        failures_path=failures_path,
        fingerprint=storage.stable_hash([*spec, samples_record.sha256, failures_record.sha256]),
        revision=revision,
        n_samples=samples_record.rows or 0,
        n_failed=len(failures),
        samples=samples_record,
        failures=failures_record,
    )
    storage.write_json(meta_path, ref.to_dict())
    return ref
