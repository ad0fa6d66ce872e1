"""The preprocess stage task: decode, validate and shard a downloaded dataset (``audio_evals.pipeline.preprocess``)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from audio_evals.paths import audio_cache_dir
from audio_evals.pipeline import preprocess as stage
from audio_evals.records import DatasetRef, PreparedRef
from audio_evals.run.plan import EvalPlan


@task(name="preprocess", cache_policy=NO_CACHE, persist_result=False)
def preprocess(
    dataset: DatasetRef,
    plan: EvalPlan,
    cache_dir: str,
    sample_rate: int,
    shard_size: int,
    max_duration_s: float | None = None,
    fresh: bool = False,
) -> PreparedRef:
    """The library's own cache (verified on every read) decides what is reused, not Prefect's."""
    return stage.preprocess(dataset, cache_dir, audio_cache_dir(cache_dir), sample_rate, shard_size, max_duration_s,
                   plan.skip_reason, plan.skip_key(), fresh, plan.reference_problem)
