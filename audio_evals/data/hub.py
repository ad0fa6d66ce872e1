"""Hugging Face datasets as ``Sample`` rows, from the hub or from a mirror laid out like it.

Rows are streamed and the audio column is never decoded: each clip's encoded bytes go straight
to a content-addressed file, so memory does not grow with the dataset and ``limit`` reads only
what it needs.

A mirror (``AUDIO_EVALS_HF_MIRROR``) serves machines without hub access. Its value is a
comma-separated list of items: ``repo_id=location`` maps one repo to a folder or ``s3://`` prefix
holding a copy of that repo; a bare ``root`` serves every other repo from ``<root>/<repo_id>``.
A copy made by ``hf download REPO --repo-type dataset --local-dir DIR`` is such a layout. The
split's files are resolved from the copy's ``README.md`` ``configs:`` block as the hub does, so
mirror and hub yield the same rows. A repo a mirror covers is never fetched from the hub.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fsspec

from audio_evals import storage
from audio_evals.cache import write_content_addressed
from audio_evals.hub import offline, repo_commit
from audio_evals.data.sources import AUDIO_EXTENSIONS
from audio_evals.schema import Sample, SampleFailure

MIRROR_ENV = "AUDIO_EVALS_HF_MIRROR"
#: Columns tried, in order, for a stable sample id when the source names none.
ID_COLUMNS = ("id", "key", "audio_id", "segment_id", "path")
_MAGIC = ((b"RIFF", "wav"), (b"fLaC", "flac"), (b"OggS", "ogg"), (b"ID3", "mp3"), (b"FORM", "aiff"))


class DatasetUnavailable(RuntimeError):
    """The dataset cannot be read from here: hub unreachable or offline, or the mirror lacks it."""


class HubUnreachable(DatasetUnavailable):
    """The hub did not answer (connection refused, DNS, timeout, 5xx): the one case a retry may fix."""


@dataclass(frozen=True)
class _Mirror:
    """A copy of one hub repo on a local disk or an object store."""

    location: str
    fs: fsspec.AbstractFileSystem
    root: str
    storage_options: dict[str, Any]

    def files(self, source: dict[str, Any], split: str) -> dict[str, dict[str, Any]]:
        """The parquet files of ``split`` (URL -> listing info), as the hub would resolve them.

        A source's ``data_dir`` names the folder outright (a README-less parquet branch).
        """
        try:
            entry = None if source.get("data_dir") else _config_entry(self._card_configs(), source)
            if entry is not None and "data_files" in entry:
                candidates = [_split_patterns(entry, split)]
            else:
                folder = source.get("data_dir") or (entry or {}).get("data_dir") or source.get("config")
                candidates = [[p] for p in _layout_patterns(folder, split)]
            for patterns in candidates:
                found = self._glob(patterns)
                if found:
                    return {self._url(path): info for path, info in sorted(found.items())}
        except ValueError:
            raise  # a config or split the repo does not have: the registry entry is wrong
        except Exception as e:  # store down, bucket gone, access denied: the copy cannot be read
            why = f"the mirror at {self.location} cannot be read ({type(e).__name__}: {e})"
            raise _unavailable(source, split, why) from e
        tried = [p for patterns in candidates for p in patterns]
        raise _unavailable(source, split, f"the mirror at {self.location} has no parquet files for it (tried {tried})")

    def readme(self) -> dict[str, Any] | None:
        path = f"{self.root}/README.md"
        return self.fs.info(path) if self.fs.exists(path) else None

    def _card_configs(self) -> list[dict[str, Any]]:
        from huggingface_hub import DatasetCard

        if self.readme() is None:
            return []
        card = DatasetCard(self.fs.cat_file(f"{self.root}/README.md").decode("utf-8"))
        return list(card.data.to_dict().get("configs") or [])

    def _glob(self, patterns: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for pattern in patterns:
            matches = self.fs.glob(f"{self.root}/{pattern.removeprefix('./')}", detail=True)
            found.update({p: i for p, i in matches.items() if p.endswith(".parquet") and i.get("type") == "file"})
        return found

    def _url(self, path: str) -> str:
        return self.fs.unstrip_protocol(path) if storage.is_remote(self.location) else path


def iter_hub_samples(
    source: dict[str, Any], audio_dir: str, limit: int | None = None
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


def check_reachable(source: dict[str, Any]) -> None:
    """Raise ``DatasetUnavailable`` (or ``ValueError`` for a config or split it lacks) unless the
    source can be read from here, as ``iter_hub_samples`` would read it.

    A pre-flight, before any download: the mirror's listing when a mirror covers the repo, else
    one hub request with a short timeout (none at all in offline mode), never retried. The
    download cache cannot stand in for either: its key is the commit the hub names.
    """
    mirror = _mirror(source["repo"])
    if mirror is None:
        _hub_commit(source)
        return
    for split in _splits(source):
        mirror.files(source, split)


def hub_revision(source: dict[str, Any]) -> str | None:
    """The identity of the data read: mirror location + listing hash, else the hub commit.

    A pinned revision is resolved to its commit when the hub answers, and returned as given
    when it does not. None when unpinned and the hub cannot be asked: the load then fails clearly.
    """
    mirror = _mirror(source["repo"])
    if mirror is not None:
        infos = {url: info for split in _splits(source) for url, info in mirror.files(source, split).items()}
        infos["README.md"] = mirror.readme() or {}
        listing = sorted((name, i.get("size"), i.get("ETag") or i.get("mtime")) for name, i in infos.items())
        return f"mirror:{mirror.location}@{storage.stable_hash(listing)[:16]}"
    try:
        return _hub_commit(source)
    except DatasetUnavailable:
        return source.get("revision")


# --- where the rows come from -----------------------------------------------------------------


def _splits(source: dict[str, Any]) -> list[str]:
    split = source.get("split") or "test"
    return [split] if isinstance(split, str) else list(split)


def _split_opener(source: dict[str, Any]) -> Callable[[str], Any]:
    """A function opening one split as a streaming dataset with undecoded audio.

    Without a mirror the hub is asked once, with a short timeout, before any load: an
    unreachable hub then fails in seconds instead of after retries inside ``datasets``, and
    every split is read at the same commit.
    """
    import datasets

    mirror = _mirror(source["repo"])
    audio_column = source.get("audio_column") or "audio"
    if mirror is not None:

        def load(split: str) -> Any:
            return datasets.load_dataset(
                "parquet", data_files={split: list(mirror.files(source, split))}, split=split,
                streaming=True, storage_options=mirror.storage_options or None,
            )

    else:
        commit = _hub_commit(source)

        def load(split: str) -> Any:
            return datasets.load_dataset(source["repo"], source.get("config"), data_dir=source.get("data_dir"),
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


def _hub_commit(source: dict[str, Any]) -> str:
    """The commit the hub serves for the source's revision; ``DatasetUnavailable`` if it cannot say."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    where = ",".join(_splits(source))
    if offline():
        raise _unavailable(source, where, "HF_HUB_OFFLINE is set and no mirror covers it")
    try:
        return repo_commit("dataset", source["repo"], source.get("revision"))
    except (GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError) as e:
        why = f"not found on the hub or access not granted (log in or set HF_TOKEN): {type(e).__name__}"
        raise _unavailable(source, where, why) from e
    except Exception as e:  # connection refused, DNS, timeout, 5xx: all mean "cannot reach it"
        why = f"the hub is unreachable ({type(e).__name__}: {e})"
        raise _unavailable(source, where, why, HubUnreachable) from e


def _unavailable(source: dict[str, Any], split: str, why: str,
                 kind: type[DatasetUnavailable] = DatasetUnavailable) -> DatasetUnavailable:
    repo = source["repo"]
    subset = f"data_dir={source['data_dir']}" if source.get("data_dir") else f"config={source.get('config') or 'default'}"
    revision = f" --revision {source['revision']}" if source.get("revision") else ""
    return kind(
        f"Hugging Face dataset {repo} ({subset}, split={split}) "
        f"is unavailable: {why}. To read it without the hub, set {MIRROR_ENV} to a root holding a "
        f"copy of the repo at <root>/{repo}/ ({MIRROR_ENV}=/data/hf or s3://bucket/hf), or map the repo "
        f"to a copy ({MIRROR_ENV}={repo}=/data/copy, made e.g. with "
        f"`hf download {repo} --repo-type dataset{revision} --local-dir /data/copy`)."
    )


# --- the mirror -------------------------------------------------------------------------------


def _mirror(repo: str) -> _Mirror | None:
    location = _mirror_location(repo, os.environ.get(MIRROR_ENV, ""))
    if location is None:
        return None
    options = _storage_options(location)
    fs, root = fsspec.core.url_to_fs(location, **options)
    fs.invalidate_cache()  # a long-lived process must see a mirror that changed since last time
    return _Mirror(location=location, fs=fs, root=root.rstrip("/"), storage_options=options)


def _mirror_location(repo: str, value: str) -> str | None:
    """``repo``'s copy per the mirror setting: its own mapping, else ``<root>/<repo>``, else None."""
    root = None
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, location = item.partition("=")
        if not sep:
            root = root or item
        elif name.strip() == repo:
            return _absolute(location.strip())
    return None if root is None else _absolute(storage.join(root, *repo.split("/")))


def _absolute(location: str) -> str:
    return location if storage.is_remote(location) else os.path.abspath(os.path.expanduser(location))


def _storage_options(location: str) -> dict[str, Any]:
    """Endpoint and region from the standard AWS variables; s3fs finds the credentials itself."""
    if not location.startswith(("s3://", "s3a://")):
        return {}
    options: dict[str, Any] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["client_kwargs"] = {"region_name": region}
    return options


def _config_entry(configs: list[dict[str, Any]], source: dict[str, Any]) -> dict[str, Any] | None:
    """The README ``configs:`` entry the hub would pick for the source's config (None: no block)."""
    if not configs:
        return None
    by_name = {c.get("config_name", "default"): c for c in configs}
    config = source.get("config")
    if config is not None:
        if config not in by_name:
            raise ValueError(f"{source['repo']}: no config {config!r} in its README (has {sorted(by_name)})")
        return by_name[config]
    flagged = [c for c in configs if c.get("default")]
    if flagged:
        return flagged[0]
    if "default" in by_name or len(configs) == 1:
        return by_name.get("default", configs[0])
    raise ValueError(f"{source['repo']}: several configs, name one with `config:` (has {sorted(by_name)})")


def _split_patterns(entry: dict[str, Any], split: str) -> list[str]:
    """Path patterns of ``split`` in a config's ``data_files`` (a bare pattern means "train")."""
    data_files = entry["data_files"]
    if isinstance(data_files, dict):
        pairs = list(data_files.items())
    else:
        items = [data_files] if isinstance(data_files, str) else data_files
        pairs = [("train", i) if isinstance(i, str) else (i["split"], i["path"]) for i in items]
    patterns = [p for name, paths in pairs if name == split for p in ([paths] if isinstance(paths, str) else paths)]
    if not patterns:
        raise ValueError(f"no split {split!r} in config {entry.get('config_name', 'default')!r} "
                         f"(has {sorted({name for name, _ in pairs})})")
    return patterns


def _layout_patterns(folder: str | None, split: str) -> list[str]:
    """Common parquet layouts, tried in order when the README names no data files."""
    if folder:
        return [f"{folder}/{split}-*.parquet", f"{folder}/{split}/*.parquet", f"data/{folder}/{split}-*.parquet"]
    return [f"data/{split}-*.parquet", f"data/{split}/*.parquet", f"default/{split}/*.parquet",
            f"{split}-*.parquet", f"{split}/*.parquet"]


# --- one row ----------------------------------------------------------------------------------


def _check_columns(source: dict[str, Any], split: str, row: dict[str, Any]) -> None:
    """A misspelt column in the registry fails loudly instead of yielding empty references."""
    named = (source.get("audio_column") or "audio", source.get("reference_column"), source.get("id_column"))
    missing = [c for c in named if c and c not in row]
    if missing:
        raise ValueError(f"{source['repo']} split {split}: no column(s) {missing}; it has {sorted(row)}")


def _to_sample(
    source: dict[str, Any], split: str, index: int, row: dict[str, Any], audio_dir: str, seen: dict[str, int]
) -> Sample | SampleFailure:
    audio_column = source.get("audio_column") or "audio"
    reference_column = source.get("reference_column")
    source_id = _source_id(row, source.get("id_column"))
    data, name = _audio_bytes(row.get(audio_column))
    if not data:
        return SampleFailure(id=_unique(source_id or f"{split}-row{index}", seen), stage="download",
                             error=f"row {index} of split {split} has no embedded audio bytes", audio=name)
    digest = hashlib.sha256(data).hexdigest()
    path = storage.join(audio_dir, digest[:2], f"{digest}.{_extension(data, name)}")
    write_content_addressed(path, data, digest)
    keep = source.get("keep_columns")
    fields = {k: _jsonable(v) for k, v in row.items()
              if k not in (audio_column, reference_column) and (keep is None or k in keep)}
    fields["split"] = split
    return Sample(
        id=_unique(source_id or f"{split}-{digest[:12]}", seen),
        audio=path,
        reference=_reference(row.get(reference_column)) if reference_column else None,
        lang=source.get("lang"),
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
