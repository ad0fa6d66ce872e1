"""The score stage task: normalise and score every sample, with bootstrap CIs (``audio_evals.pipeline.score``)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from audio_evals import storage
from audio_evals.pipeline.score import score_run
from audio_evals.records import ModelOutput, PreparedRef, SampleFailure
from audio_evals.registry import TaskEntry
from audio_evals.run.folder import write_rows
from audio_evals.run.summary import Scored


@task(name="score", cache_policy=NO_CACHE)
def score(
    task_entry: TaskEntry,
    prepared: PreparedRef,
    shard_outputs: dict[int, list[ModelOutput]],
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
