"""Model replies read back from a file (the reference tool's ``--inf_file``): scored, not re-run.

Two formats are read:

* ``samples.jsonl`` of an earlier run here: one row per sample id. The raw reply (``model_text``)
  is scored again, through the current post-processing; a speech-out row keeps its scored
  transcript and generated clip. A row that failed at inference stays failed, with its cause.
* the reference tool's record file (its ``--save`` jsonl): lines
  ``{"type": "inference", "id": i, "data": {"content": reply}}``, ``i`` being the row's position
  in the dataset as loaded, which is this dataset's row order (before any ``--rand`` draw);
  positions past the rows this run reads (``--limit``) are not used.

A sample of the run that the file has no reply for fails at inference, saying so.
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Any

from pydantic import ValidationError

from audio_evals import storage
from audio_evals.records import ModelOutput, PreparedSample, SampleRow, ShardRef

#: Statuses of a samples.jsonl row whose reply was scored (so can be scored again).
_REPLIED = {"ok", "unparsed", "dropped"}


def fingerprint(path: str) -> dict[str, Any]:
    """The identity of the replies scored, recorded where a model's fingerprint would be."""
    return {"backend": "inf_file", "inf_file": path, "sha256": storage.sha256(path)}


def read_predictions(path: str, dataset_samples_path: str) -> dict[str, ModelOutput]:
    """Sample id -> the model output for every reply in ``path``."""
    rows = list(storage.read_jsonl(path))
    if not rows:
        raise ValueError(f"--inf_file {path} holds no predictions")
    if all("type" in r and "data" in r for r in rows):
        return _reference_records(rows, dataset_samples_path)
    if all("id" in r and "status" in r for r in rows):
        return {out.sample_id: out for line, r in enumerate(rows, 1) if (out := _from_samples_row(_row(r, path, line), path))}
    raise ValueError(f"--inf_file {path} is neither a samples.jsonl of this tool nor the reference tool's "
                     "record file (lines with type/id/data)")


def shard_outputs(predictions: dict[str, ModelOutput], shards: list[ShardRef], path: str) -> dict[int, list[ModelOutput]]:
    """The outputs of every shard as the infer stage would return them, taken from ``predictions``."""
    missing = f"no prediction for this sample in --inf_file {path}"
    return {shard.index: [predictions.get(sample_id) or ModelOutput(sample_id, error=missing)
                          for sample_id in (PreparedSample.from_dict(r).sample.id for r in storage.read_jsonl(shard.path))]
            for shard in shards}


def _row(row: dict[str, Any], path: str, line: int) -> SampleRow:
    """A samples.jsonl row, validated like any input."""
    try:
        return SampleRow.model_validate(row)
    except ValidationError as e:
        error = e.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ValueError(f"--inf_file {path} line {line}: {where}: {error['msg']}") from None


def _from_samples_row(row: SampleRow, path: str) -> ModelOutput | None:
    if row.status == "failed" and row.stage == "infer":
        return ModelOutput(row.id, error=row.error)
    if row.status not in _REPLIED:
        return None  # failed or skipped before inference: this run's preprocessing decides again
    clip = row.generated_audio
    if clip and not (os.path.isabs(clip) or "://" in clip):
        folder = posixpath.dirname(path) if storage.is_remote(path) else os.path.dirname(os.path.abspath(path))
        clip = storage.join(folder, clip)
    text = row.model_text if "model_text" in row.model_fields_set else row.hypothesis
    return ModelOutput(row.id, text=text, reasoning=row.reasoning, audio_path=clip,
                       transcript=row.hypothesis if clip else None, latency_s=row.latency_s)


def _reference_records(rows: list[dict[str, Any]], dataset_samples_path: str) -> dict[str, ModelOutput]:
    ids = [str(r["id"]) for r in storage.read_jsonl(dataset_samples_path)]
    replies: dict[int, ModelOutput] = {}
    for record in rows:
        position = int(record["id"])
        if position >= len(ids):
            continue  # a row this run does not read (e.g. past --limit)
        if record["type"] == "inference":
            content = record["data"].get("content") if isinstance(record["data"], dict) else None
            text = content if isinstance(content, str) else None
            error = None if text is not None else f"reference reply is not text: {json.dumps(content)[:200]}"
            replies[position] = ModelOutput(ids[position], text=text, error=error)
        elif record["type"] == "error" and position not in replies:
            info = str((record["data"] or {}).get("info", "")).strip().splitlines()
            replies[position] = ModelOutput(ids[position], error=f"reference run failed: {info[-1] if info else 'error'}")
    return {out.sample_id: out for out in replies.values()}
