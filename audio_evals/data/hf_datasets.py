"""Hugging Face datasets as ``Sample`` rows, from the hub or from a mirror laid out like it.

Rows are streamed and the audio column is never decoded: each clip's encoded bytes go straight
to a content-addressed file, so memory does not grow with the dataset and ``limit`` reads only
what it needs.

Without hub access the rows come from a mirror (``audio_evals.data.hf_mirror``), read as the hub
would read the repo.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Callable, Iterator
from typing import Any

from audio_evals import storage
from audio_evals.cache import write_content_addressed
from audio_evals.data.hf_mirror import DatasetUnavailable, HubUnreachable, mirror_of, unavailable
from audio_evals.data.sources import AUDIO_EXTENSIONS
from audio_evals.hf_hub import offline, repo_commit
from audio_evals.records import Sample, SampleFailure
from audio_evals.registry.entries import HubSource

#: Columns tried, in order, for a stable sample id when the source names none.
ID_COLUMNS = ("id", "key", "audio_id", "segment_id", "path")
_MAGIC = ((b"RIFF", "wav"), (b"fLaC", "flac"), (b"OggS", "ogg"), (b"ID3", "mp3"), (b"FORM", "aiff"))


def iter_hub_samples(
    source: HubSource, audio_dir: str, limit: int | None = None
) -> Iterator[Sample | SampleFailure]:
    """Samples of a hub dataset, split after split, with audio written under ``audio_dir``.

    Yields a ``SampleFailure`` for a row without embedded audio bytes, so one bad row does not
    sink the dataset. Raises ``DatasetUnavailable`` before the first row when neither the hub
    nor a mirror can serve it, and ``ValueError`` when a named config, split or column does
    not exist.
    """
    open_split = _split_opener(source)
    audio_dir = audio_dir if storage.is_remote(audio_dir) else os.path.abspath(audio_dir)
    seen: dict[str, int] = {}
    count = 0
    for split in _splits(source):
        if limit is not None and count >= limit:
            return
        for index, row in enumerate(open_split(split)):
            if limit is not None and count >= limit:
                return
            if index == 0:
                _check_columns(source, split, row)
            yield _to_sample(source, split, index, row, audio_dir, seen)
            count += 1


def check_reachable(source: HubSource) -> None:
    """Raise ``DatasetUnavailable`` (or ``ValueError`` for a config or split it lacks) unless the
    source can be read from here, as ``iter_hub_samples`` would read it.

    A pre-flight, before any download: the mirror's listing when a mirror covers the repo, else
    one hub request with a short timeout (none at all in offline mode), never retried. The
    download cache cannot stand in for either: its key is the commit the hub names.
    """
    mirror = mirror_of(source.repo)
    if mirror is None:
        _hub_commit(source)
        return
    for split in _splits(source):
        mirror.files(source, split)


def hub_revision(source: HubSource) -> str | None:
    """The identity of the data read: mirror location + listing hash, else the hub commit.

    A pinned revision is resolved to its commit when the hub answers, and returned as given
    when it does not. None when unpinned and the hub cannot be asked: the load then fails clearly.
    """
    mirror = mirror_of(source.repo)
    if mirror is not None:
        infos = {url: info for split in _splits(source) for url, info in mirror.files(source, split).items()}
        infos["README.md"] = mirror.readme() or {}
        listing = sorted((name, i.get("size"), i.get("ETag") or i.get("mtime")) for name, i in infos.items())
        return f"mirror:{mirror.location}@{storage.stable_hash(listing)[:16]}"
    try:
        return _hub_commit(source)
    except DatasetUnavailable:
        return source.revision


# --- where the rows come from -----------------------------------------------------------------


def _splits(source: HubSource) -> list[str]:
    split = source.split
    return [split] if isinstance(split, str) else list(split)


def _split_opener(source: HubSource) -> Callable[[str], Any]:
    """A function opening one split as a streaming dataset with undecoded audio.

    Without a mirror the hub is asked once, with a short timeout, before any load: an
    unreachable hub then fails in seconds instead of after retries inside ``datasets``, and
    every split is read at the same commit.
    """
    import datasets

    mirror = mirror_of(source.repo)
    audio_column = source.audio_column
    if mirror is not None:

        def load(split: str) -> Any:
            return datasets.load_dataset(
                "parquet", data_files={split: list(mirror.files(source, split))}, split=split,
                streaming=True, storage_options=mirror.storage_options or None,
            )

    else:
        commit = _hub_commit(source)

        def load(split: str) -> Any:
            return datasets.load_dataset(source.repo, source.config, data_dir=source.data_dir,
                                         split=split, revision=commit, streaming=True)

    return lambda split: _undecoded(load(split), audio_column)


def _undecoded(ds: Any, audio_column: str) -> Any:
    """Cast every audio column to ``Audio(decode=False)``: rows carry encoded bytes, not arrays."""
    from datasets import Audio

    features = ds.features
    names = [audio_column] if features is None else [
        name for name, feature in features.items() if name == audio_column or isinstance(feature, Audio)
    ]
    for name in names:
        ds = ds.cast_column(name, Audio(decode=False))
    return ds


def _hub_commit(source: HubSource) -> str:
    """The commit the hub serves for the source's revision; ``DatasetUnavailable`` if it cannot say."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    where = ",".join(_splits(source))
    if offline():
        raise unavailable(source, where, "HF_HUB_OFFLINE is set and no mirror covers it")
    try:
        return repo_commit("dataset", source.repo, source.revision)
    except (GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError) as e:
        why = f"not found on the hub or access not granted (log in or set HF_TOKEN): {type(e).__name__}"
        raise unavailable(source, where, why) from e
    except Exception as e:  # connection refused, DNS, timeout, 5xx: all mean "cannot reach it"
        why = f"the hub is unreachable ({type(e).__name__}: {e})"
        raise unavailable(source, where, why, HubUnreachable) from e


# --- one row ----------------------------------------------------------------------------------


def _check_columns(source: HubSource, split: str, row: dict[str, Any]) -> None:
    """A misspelt column in the registry fails loudly instead of yielding empty references."""
    named = (source.audio_column, source.reference_column, source.id_column)
    missing = [c for c in named if c and c not in row]
    if missing:
        raise ValueError(f"{source.repo} split {split}: no column(s) {missing}; it has {sorted(row)}")


def _to_sample(
    source: HubSource, split: str, index: int, row: dict[str, Any], audio_dir: str, seen: dict[str, int]
) -> Sample | SampleFailure:
    audio_column = source.audio_column
    reference_column = source.reference_column
    source_id = _source_id(row, source.id_column)
    data, name = _audio_bytes(row.get(audio_column))
    if not data:
        return SampleFailure(id=_unique(source_id or f"{split}-row{index}", seen), stage="download",
                             error=f"row {index} of split {split} has no embedded audio bytes", audio=name)
    digest = hashlib.sha256(data).hexdigest()
    path = storage.join(audio_dir, digest[:2], f"{digest}.{_extension(data, name)}")
    write_content_addressed(path, data, digest)
    keep = source.keep_columns
    fields = {k: _jsonable(v) for k, v in row.items()
              if k not in (audio_column, reference_column) and (keep is None or k in keep)}
    fields["split"] = split
    return Sample(
        id=_unique(source_id or f"{split}-{digest[:12]}", seen),
        audio=path,
        reference=_reference(row.get(reference_column)) if reference_column else None,
        lang=source.lang,
        fields=fields,
    )


def _source_id(row: dict[str, Any], id_column: str | None) -> str | None:
    """The row's own id: the named column, else the first common id column that is filled."""
    for name in [id_column] if id_column else ID_COLUMNS:
        value = row.get(name)
        if value is not None and str(value).strip():
            text = str(_jsonable(value)).strip()
            return os.path.splitext(posixpath.basename(text))[0] if name == "path" and not id_column else text
    return None


def _unique(sample_id: str, seen: dict[str, int]) -> str:
    """Repeated ids get ``#2``, ``#3``... in row order, so every id stays stable and distinct."""
    seen[sample_id] = seen.get(sample_id, 0) + 1
    return sample_id if seen[sample_id] == 1 else f"{sample_id}#{seen[sample_id]}"


def _audio_bytes(value: Any) -> tuple[bytes | None, str | None]:
    """Encoded bytes and source file name of an undecoded audio cell.

    Only embedded bytes count: a bare path in a downloaded dataset is never followed, so a row
    cannot make the loader copy an arbitrary local file into the audio cache.
    """
    if isinstance(value, dict):
        return value.get("bytes"), value.get("path")
    return None, value if isinstance(value, str) else None


def _extension(data: bytes, name: str | None) -> str:
    ext = os.path.splitext(name or "")[1].lower()
    if ext in AUDIO_EXTENSIONS:
        return ext[1:]
    return next((e for magic, e in _MAGIC if data.startswith(magic)), "bin")


def _reference(value: Any) -> str | list[str] | None:
    value = _jsonable(value)
    if value is None:
        return None
    if isinstance(value, list):
        return [str(v).strip() for v in value]
    return str(value).strip()


def _jsonable(value: Any) -> Any:
    """Plain JSON types from numpy/arrow values; embedded bytes (other media) become None."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    for convert in ("as_py", "tolist", "isoformat"):
        if hasattr(value, convert):
            return _jsonable(getattr(value, convert)())
    return str(value)
