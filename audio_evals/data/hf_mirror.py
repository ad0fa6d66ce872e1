"""A copy of a Hugging Face dataset repo on a local disk or an object store, read as the hub would.

A mirror (``AUDIO_EVALS_HF_MIRROR``) serves machines without hub access. Its value is a
comma-separated list of items: ``repo_id=location`` maps one repo to a folder or ``s3://`` prefix
holding a copy of that repo; a bare ``root`` serves every other repo from ``<root>/<repo_id>``.
A copy made by ``hf download REPO --repo-type dataset --local-dir DIR`` is such a layout. The
split's files are resolved from the copy's ``README.md`` ``configs:`` block as the hub does, so
mirror and hub yield the same rows. A repo a mirror covers is never fetched from the hub.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import fsspec

from audio_evals import storage
from audio_evals.registry.entries import HubSource

MIRROR_ENV = "AUDIO_EVALS_HF_MIRROR"


class DatasetUnavailable(RuntimeError):
    """The dataset cannot be read from here: hub unreachable or offline, or the mirror lacks it."""


class HubUnreachable(DatasetUnavailable):
    """The hub did not answer (connection refused, DNS, timeout, 5xx): the one case a retry may fix."""


def unavailable(source: HubSource, split: str, why: str,
                 kind: type[DatasetUnavailable] = DatasetUnavailable) -> DatasetUnavailable:
    repo = source.repo
    subset = f"data_dir={source.data_dir}" if source.data_dir else f"config={source.config or 'default'}"
    revision = f" --revision {source.revision}" if source.revision else ""
    return kind(
        f"Hugging Face dataset {repo} ({subset}, split={split}) "
        f"is unavailable: {why}. To read it without the hub, set {MIRROR_ENV} to a root holding a "
        f"copy of the repo at <root>/{repo}/ ({MIRROR_ENV}=/data/hf or s3://bucket/hf), or map the repo "
        f"to a copy ({MIRROR_ENV}={repo}=/data/copy, made e.g. with "
        f"`hf download {repo} --repo-type dataset{revision} --local-dir /data/copy`)."
    )


@dataclass(frozen=True)
class Mirror:
    """A copy of one hub repo on a local disk or an object store."""

    location: str
    fs: fsspec.AbstractFileSystem
    root: str
    storage_options: dict[str, Any]

    def files(self, source: HubSource, split: str) -> dict[str, dict[str, Any]]:
        """The parquet files of ``split`` (URL -> listing info), as the hub would resolve them.

        A source's ``data_dir`` names the folder outright (a README-less parquet branch).
        """
        try:
            entry = None if source.data_dir else _config_entry(self._card_configs(), source)
            if entry is not None and "data_files" in entry:
                candidates = [_split_patterns(entry, split)]
            else:
                folder = source.data_dir or (entry or {}).get("data_dir") or source.config
                candidates = [[p] for p in _layout_patterns(folder, split)]
            for patterns in candidates:
                found = self._glob(patterns)
                if found:
                    return {self._url(path): info for path, info in sorted(found.items())}
        except ValueError:
            raise  # a config or split the repo does not have: the registry entry is wrong
        except Exception as e:  # store down, bucket gone, access denied: the copy cannot be read
            why = f"the mirror at {self.location} cannot be read ({type(e).__name__}: {e})"
            raise unavailable(source, split, why) from e
        tried = [p for patterns in candidates for p in patterns]
        raise unavailable(source, split, f"the mirror at {self.location} has no parquet files for it (tried {tried})")

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


def mirror_of(repo: str) -> Mirror | None:
    location = _mirror_location(repo, os.environ.get(MIRROR_ENV, ""))
    if location is None:
        return None
    options = _storage_options(location)
    fs, root = fsspec.core.url_to_fs(location, **options)
    fs.invalidate_cache()  # a long-lived process must see a mirror that changed since last time
    return Mirror(location=location, fs=fs, root=root.rstrip("/"), storage_options=options)


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


def _config_entry(configs: list[dict[str, Any]], source: HubSource) -> dict[str, Any] | None:
    """The README ``configs:`` entry the hub would pick for the source's config (None: no block)."""
    if not configs:
        return None
    by_name = {c.get("config_name", "default"): c for c in configs}
    config = source.config
    if config is not None:
        if config not in by_name:
            raise ValueError(f"{source.repo}: no config {config!r} in its README (has {sorted(by_name)})")
        return by_name[config]
    flagged = [c for c in configs if c.get("default")]
    if flagged:
        return flagged[0]
    if "default" in by_name or len(configs) == 1:
        return by_name.get("default", configs[0])
    raise ValueError(f"{source.repo}: several configs, name one with `config:` (has {sorted(by_name)})")


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
    """Common parquet layouts, tried in order when the README names no data files.

    A folder of the hub's parquet conversion holds ``<split>/NNNN.parquet``, or, as the converter
    first wrote it (and copies made then keep), ``<name>-<split>.parquet`` and
    ``<name>-<split>-NNNNN-of-NNNNN.parquet`` (``en_us/fleurs-test.parquet``).
    """
    if folder:
        return [f"{folder}/{split}-*.parquet", f"{folder}/{split}/*.parquet", f"{folder}/*-{split}.parquet",
                f"{folder}/*-{split}-*-of-*.parquet", f"data/{folder}/{split}-*.parquet"]
    return [f"data/{split}-*.parquet", f"data/{split}/*.parquet", f"default/{split}/*.parquet",
            f"{split}-*.parquet", f"{split}/*.parquet"]
