"""Which weights a backend runs: a hub id pinned to one commit, or a local folder by content.

Nothing here imports torch or transformers: a backend is fingerprinted without its extra.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field
from typing import Any

from audio_evals import hf_hub
from audio_evals.cache import folder_fingerprint
from audio_evals.paths import file_index_path, local_cache_dir, resolve_resource


def version(package: str) -> str | None:
    """Installed version of ``package`` without importing it (None if absent)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def local_weights(folder: str) -> dict[str, Any]:
    """What identifies a local folder of weights: its path and the content of its files."""
    return {"path": os.path.abspath(folder), "files_sha256": folder_fingerprint(folder, file_index_path(local_cache_dir()))}


@dataclass(kw_only=True)
class HubWeights:
    """Weights named by a hub id or a local folder; hub weights are pinned to one commit.

    The commit is resolved once per backend (from the hub, else the local cache's refs), recorded
    in the fingerprint and passed as ``revision=`` when loading, so a weights update on the hub
    is a new identity instead of silently other weights under the old one.
    """

    model: str
    revision: str | None = None
    _commit: tuple[str | None] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def source(self) -> str:
        """Where weights are loaded from: a hub id, or a folder (``package:``/``assets:`` expanded)."""
        return resolve_resource(self.model)

    def commit(self) -> str | None:
        """The hub commit the weights are loaded at; None for a local folder or when nobody can say."""
        if self._commit is None:
            self._commit = (None if os.path.isdir(self.source) else hf_hub.model_commit(self.source, self.revision),)
        return self._commit[0]

    def load_revision(self) -> str | None:
        """The ``revision=`` to load with: the resolved commit, else the revision as given."""
        return self.commit() or self.revision

    def weights(self) -> dict[str, Any]:
        """What identifies the weights without loading them."""
        if os.path.isdir(self.source):
            return local_weights(self.source)
        return {"hub_id": self.source, "revision": self.revision, "commit": self.commit()}
