"""Which model revisions are new: poll model sources, remember what was seen, announce the rest.

Sources (a watch config, ``deployments/watch.yaml``) map a location to a registry model name:

- ``hf: owner/repo``: the repo's current commit (``audio_evals.hf_hub.repo_commit``);
- ``s3: s3://bucket/prefix`` or ``folder: path``: every sub-folder is a revision of the model,
  named after the folder; it counts once its manifest file exists (write it last), and again
  when the manifest changes (S3 ETag, or the SHA-256 of a local file).

The last-seen state is a JSON file in the results store, written atomically after each
announcement, so a restarted watcher announces nothing twice (at-least-once: a crash between
the announcement and the write repeats that one announcement).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from audio_evals import hf_hub, storage

MODEL_PUBLISHED = "audio_evals.model.published"
STATE_FILE = "watch-state.json"
DEFAULT_CONFIG = "deployments/watch.yaml"


class Emit(Protocol):
    """How an announcement goes out: Prefect's ``emit_event`` in the flow, a recorder in tests."""

    def __call__(self, event: str, *, resource: dict[str, str], payload: dict[str, Any]) -> Any: ...


_log = logging.getLogger(__name__)


def model_resource(model: str) -> dict[str, str]:
    """The Prefect event resource of a registry model (automations match on its id)."""
    return {"prefect.resource.id": f"audio-evals.model.{model}", "prefect.resource.name": model}


class WatchSource(BaseModel):
    """One watched location and the registry model it publishes (exactly one of hf, s3, folder)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str
    hf: str | None = None
    s3: str | None = None
    folder: str | None = None
    manifest: str = "manifest.json"

    @model_validator(mode="after")
    def _one_location(self) -> "WatchSource":
        given = [k for k in ("hf", "s3", "folder") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"source of model {self.model!r} needs exactly one of hf, s3, folder (got {given or 'none'})")
        if self.s3 and not self.s3.startswith("s3://"):
            raise ValueError(f"s3 source of model {self.model!r} must be an s3:// URL, got {self.s3!r}")
        return self

    @property
    def uri(self) -> str:
        return f"hf://{self.hf}" if self.hf else (self.s3 or self.folder or "")

    @property
    def key(self) -> str:
        """Identity in the state file: the same location watched for two models is two sources."""
        return f"{self.model}|{self.uri}"


class WatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sources: list[WatchSource]


def load_config(path: str) -> list[WatchSource]:
    """Read a watch config; relative local folders are relative to the config file."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    base = os.path.dirname(os.path.abspath(path))
    return [s.model_copy(update={"folder": os.path.join(base, s.folder)}) if s.folder else s
            for s in WatchConfig.model_validate(raw).sources]


def _hub_revisions(repo: str) -> dict[str, dict[str, Any]]:
    if hf_hub.offline():
        raise RuntimeError("hub access is off (HF_HUB_OFFLINE)")
    sha = hf_hub.repo_commit("model", repo, None)
    return {sha: {"fingerprint": sha, "path": None}}


def _folder_revisions(url: str, manifest: str) -> dict[str, dict[str, Any]]:
    """Sub-folders whose manifest exists, with the manifest's ETag (object stores) or SHA-256."""
    fs, root = storage.filesystem(url)
    fs.invalidate_cache()
    found = {}
    for entry in fs.ls(root, detail=True):
        if entry["type"] != "directory":
            continue
        path = entry["name"].rstrip("/")
        try:
            info = fs.info(f"{path}/{manifest}")
        except FileNotFoundError:
            continue  # still uploading: the manifest is written last
        etag = str(info.get("ETag") or "").strip('"')
        location = fs.unstrip_protocol(path) if storage.is_remote(url) else path
        fingerprint = etag or storage.sha256(f"{location}/{manifest}")
        found[path.rsplit("/", 1)[-1]] = {"fingerprint": fingerprint, "path": location}
    return found


def revisions(source: WatchSource) -> dict[str, dict[str, Any]]:
    """Current revisions of a source: ``{revision: {"fingerprint", "path"}}``."""
    if source.hf:
        return _hub_revisions(source.hf)
    return _folder_revisions(source.s3 or source.folder or "", source.manifest)


def state_path(output: str) -> str:
    """The watcher's state lives in the results store, beside the runs it causes."""
    return storage.join(output, STATE_FILE)


def poll(sources: list[WatchSource], state_file: str, emit: Emit,
         log: logging.Logger | logging.LoggerAdapter = _log) -> list[dict[str, Any]]:
    """Announce every revision not yet in the state (or whose manifest changed); returns the payloads.

    A source that cannot be read (hub unreachable, missing bucket) is a warning, not an error:
    the other sources are still polled and the unreadable one is tried again next time.
    """
    state: dict[str, dict[str, str]] = storage.read_json(state_file) if storage.exists(state_file) else {}
    announced = []
    for source in sources:
        try:
            current = revisions(source)
        except Exception as e:  # noqa: BLE001 (any failure of one source must not stop the others)
            log.warning("cannot poll %s for model %s: %s: %s", source.uri, source.model, type(e).__name__, e)
            continue
        seen = state.setdefault(source.key, {})
        for revision, found in sorted(current.items()):
            if seen.get(revision) == found["fingerprint"]:
                continue
            payload = {"model": source.model, "revision": revision, "source": source.uri, **found}
            emit(MODEL_PUBLISHED, resource=model_resource(source.model), payload=payload)
            seen[revision] = found["fingerprint"]
            storage.write_json(state_file, state)
            log.info("announced %s revision %s from %s", source.model, revision, source.uri)
            announced.append(payload)
    return announced
