"""Retrying a run: a new run that finishes the failed shards of an earlier one, never touching it.

The earlier run's ``summary.json`` is input like any other: its recorded ``RunSpec`` is validated
as a command line's is. The retry runs with the recorded options into a new folder beside the earlier one (whatever the working
directory, wherever the folder was copied to), records its parent's id, and stops before any
inference when the dataset or options no longer give what the earlier run evaluated.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from audio_evals import storage
from audio_evals.paths import folder_name
from audio_evals.run.spec import ParentRun, RunSpec
from audio_evals.run.summary import SUMMARY_FILE, RunSummary


class RunRecordError(ValueError):
    """A run's ``summary.json`` cannot be used for a retry; the message names the file and field."""


class RunChanged(ValueError):
    """The dataset or options changed since the run being retried; the message says what."""


@dataclass(frozen=True)
class Retry:
    """A validated earlier run and where its retry goes."""

    run_id: str
    failed_shards: int
    #: Samples that failed in completed shards: deterministic, a retry would not change them.
    failed_samples: int
    spec: RunSpec  # what the retry evaluates: the recorded spec, beside the earlier run, naming it as parent

    @property
    def nothing_to_do(self) -> str | None:
        """Why retrying makes no sense (no failed shard), or None."""
        if self.failed_shards:
            return None
        samples = (f"; its {self.failed_samples} failed samples fail the same way each time (causes in its "
                   "samples.jsonl)") if self.failed_samples else ""
        return f"nothing to retry: run {self.run_id} has no failed shard{samples}; no new run made"


def _first_error(path: str, error: ValidationError, within: str = "") -> RunRecordError:
    e = error.errors()[0]
    where = ".".join([within, *map(str, e["loc"])] if within else map(str, e["loc"])) or "(top level)"
    got = f" (got {e['input']!r:.60})" if "input" in e and not isinstance(e["input"], dict) else ""
    return RunRecordError(f"{path}: {where}: {e['msg'].removeprefix('Value error, ')}{got}")


def _results_root(folder: str, record: RunSummary) -> str:
    """The results root holding ``<model>/<dataset>/<run>``: the retry goes beside the run named."""
    path = posixpath if storage.is_remote(folder) else os.path
    dataset_dir = path.dirname(folder)
    model_dir = path.dirname(dataset_dir)
    expected = (folder_name(record.model.name), folder_name(record.dataset.name))
    if (path.basename(model_dir), path.basename(dataset_dir)) != expected:
        raise RunRecordError(f"{folder} is not laid out as <results>/{expected[0]}/{expected[1]}/<run>: "
                             "cannot place the retry beside it")
    return path.dirname(model_dir)


def load(run: str) -> Retry:
    """Read and validate the run folder (or ``summary.json``) ``run`` named on the command line."""
    path = storage.absolute(run if run.endswith(SUMMARY_FILE) else storage.join(run, SUMMARY_FILE))
    try:
        data = storage.read_json(path)
    except FileNotFoundError:
        raise RunRecordError(f"no {SUMMARY_FILE} at {path}") from None
    except ValueError as e:
        raise RunRecordError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise RunRecordError(f"{path} is not a JSON object")
    if "identity" not in data:
        raise RunRecordError(f"{path} has no identity record (written by an older version): "
                             "start a new run with the same options instead")
    try:
        record = RunSummary.model_validate(data)
    except ValidationError as e:
        raise _first_error(path, e) from None
    if record.run_id is None:
        raise RunRecordError(f"{path}: run_id: is missing (the run never ran)")
    try:
        recorded = RunSpec.model_validate(record.options)
    except ValidationError as e:
        raise _first_error(path, e, within="options") from None
    dataset = recorded.dataset
    if record.dataset.source.get("type") == "manifest" and dataset.endswith((".jsonl", ".json")):
        dataset = record.dataset.source.get("path") or dataset  # absolute: any cwd
    folder = storage.parent(path)
    # Not ``fresh``: completed shards come from the cache.
    spec = recorded.replace(dataset=dataset, output=_results_root(folder, record), fresh=False,
                            parent=ParentRun(run_id=record.run_id, identity=record.identity))
    return Retry(run_id=record.run_id, failed_shards=len(record.failed_shards), failed_samples=record.counts.failed,
                 spec=spec)


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _leaves(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:20] + "…"


#: What a changed hash in a run's identity means, said in words beside it.
MEANING = {
    "dataset.fingerprint": "the dataset's files changed",
    "dataset.revision": "the dataset's revision changed",
    "prepared.key": "the preprocessed shards would differ",
    "model.fingerprint": "the model's weights or settings changed",
    "prompt.messages": "the prompt's text changed",
}


def _change(key: str, old: Any, new: Any) -> str:
    meaning = f" ({MEANING[key]})" if key in MEANING else ""
    return f"{key}{meaning} {_short(old)} → {_short(new)}"


def check_unchanged(parent: ParentRun, identity: dict[str, Any]) -> None:
    """Refuse (``RunChanged``) when this run would not evaluate what ``parent`` evaluated."""
    old, new = _leaves(parent.identity), _leaves(identity)
    changes = [_change(key, old.get(key), new.get(key))
               for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)]
    if changes:
        raise RunChanged(f"run {parent.run_id} cannot be retried: the dataset or options changed since it ran "
                         f"({'; '.join(changes)}); start a new run instead")
