"""The infer stage task: run the model on one shard (``audio_evals.pipeline.infer``).

The library's cache decides reuse (a cached shard finishes in the state "Cached"), never
Prefect's pickled results. Retries: the client retries each request; this task is retried (count
and delays set by the flow) only when the whole backend failed for a while
(``TransientBackendError``), never for requests the client already retried, for deterministic
errors or for a backend that cannot run here.
"""

from __future__ import annotations

from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import task_run as current_task_run
from prefect.states import Completed, State

from audio_evals.models import generation_params, get_backend
from audio_evals.models.base import TransientBackendError
from audio_evals.pipeline.infer import cached_result, infer_cached, infer_key
from audio_evals.records import ShardRef, ShardResult
from audio_evals.redaction import install_log_redaction
from audio_evals.registry import ModelEntry, PromptEntry
from tasks.gpu import gpu_slot

install_log_redaction()  # also in Dask worker processes, which import this module to run shards


def retry_whole_backend(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry a shard only when the whole backend was down for a while (a served model's server
    died); requests were already retried by the client, and nothing else gets better by retrying."""
    try:
        state.result()
    except TransientBackendError:
        return True
    except Exception:
        return False
    return False


@task(
    name="infer",
    task_run_name="infer-shard-{shard.index}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_whole_backend,
)
def infer(
    shard: ShardRef,
    model: ModelEntry,
    generation: dict[str, Any],
    prompt: PromptEntry,
    model_fingerprint: dict[str, Any],
    audio_dir: str,
    cache_dir: str,
    fresh: bool = False,
    transcribers: dict[str, ModelEntry] | None = None,
    transcriber_fingerprints: dict[str, dict[str, Any]] | None = None,
) -> ShardResult | State:
    key = infer_key(shard, prompt, model_fingerprint, transcriber_fingerprints)
    cached = None if fresh else cached_result(cache_dir, key)
    if cached is not None:
        return Completed(data=cached, name="Cached", message="shard result from the cache")
    asr = {lang: get_backend(m, generation_params(m)) for lang, m in (transcribers or {}).items()}
    with gpu_slot(model):
        # ``fresh`` recomputes what earlier runs answered, but a retry keeps what this run's attempt got.
        return infer_cached(shard, get_backend(model, generation), prompt, audio_dir, cache_dir, key, asr,
                            keep_answered=not fresh or current_task_run.run_count > 1)
