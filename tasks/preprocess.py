"""preprocess: decode, validate and shard the audio of a materialised dataset."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from audio_evals import storage
from audio_evals.data import DatasetRef, PreparedRef, prepare
from audio_evals.paths import audio_cache_dir
from audio_evals.plan import EvalPlan


def preprocess_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    dataset: DatasetRef = parameters["dataset"]
    plan: EvalPlan = parameters["plan"]
    return "preprocess-" + storage.stable_hash([
        dataset.fingerprint, parameters["cache_dir"], parameters["sample_rate"],
        parameters["shard_size"], parameters.get("max_duration_s"), plan.skip_key(),
    ])


@task(name="preprocess", cache_key_fn=preprocess_key, persist_result=True)
def preprocess(
    dataset: DatasetRef,
    plan: EvalPlan,
    cache_dir: str,
    sample_rate: int,
    shard_size: int,
    max_duration_s: float | None = None,
) -> PreparedRef:
    ref = prepare(dataset, cache_dir, audio_cache_dir(cache_dir), sample_rate, shard_size, max_duration_s,
                  plan.skip_reason, plan.skip_key(), plan.reference_problem)
    missing = [s.path for s in ref.shards if not storage.exists(s.path)]
    if missing:
        raise FileNotFoundError(f"prepared shards missing: {missing[:3]}")
    return ref
