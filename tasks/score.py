"""The score stage task: normalise and score every sample, with bootstrap confidence intervals."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from audio_evals import storage
from audio_evals.data import PreparedRef
from audio_evals.registry import TaskEntry
from audio_evals.results import write_rows
from audio_evals.schema import SampleFailure
from audio_evals.scoring import Scored, score_run


@task(name="score", cache_policy=NO_CACHE)
def score(
    task_entry: TaskEntry,
    prepared: PreparedRef,
    shard_outputs: dict[int, list[dict[str, Any]]],
    shard_errors: dict[int, str],
    folder: str,
    strict: bool = False,
    post_process: tuple[str, ...] = (),
    macro_over: str | None = None,
    drop_above_wer: float | None = None,
) -> Scored:
    """Score and stream the per-sample rows into the run ``folder``; cheap, so never cached."""
    failures = (SampleFailure.from_dict(r) for r in storage.read_jsonl(prepared.failures_path))
    return score_run(task_entry, prepared.shards, shard_outputs, shard_errors, failures,
                     sink=lambda rows: write_rows(folder, rows), strict=strict,
                     post_process=tuple(post_process), macro_over=macro_over, drop_above_wer=drop_above_wer)
