"""The infer stage task: run the model on one shard (``audio_evals.infer.infer_shard``).

Cache key = model fingerprint (weights, settings, generation params) + prompt + shard content
hash, so a re-run recomputes only shards that failed or are new. Results are cached as JSON
entries in the cache folder (``audio_evals.cache``), never as Prefect's pickled results: a cached
shard finishes in the state "Cached". The answers a failed attempt did receive are kept in an
``infer-answered`` entry under the same key, so the next attempt (a retry, or the next run) sends
only the other samples.

Retries: the client retries each request; this task is retried (count and delays set by the flow)
only when the whole backend failed for a while (``TransientBackendError``), never for requests
the client already retried, for deterministic errors or for a backend that cannot run here.
"""

from __future__ import annotations

from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import task_run as current_task_run
from prefect.states import Completed, State

from audio_evals import cache, storage
from audio_evals.infer import infer_shard
from audio_evals.models import generation_params, get_backend
from audio_evals.models.base import ModelOutput, ShardIncomplete, TransientBackendError
from audio_evals.redaction import install_log_redaction
from audio_evals.registry import ModelEntry, PromptEntry
from audio_evals.schema import ShardRef
from tasks.gpu import gpu_slot

install_log_redaction()  # also in Dask worker processes, which import this module to run shards


def infer_key(shard: ShardRef, prompt: PromptEntry, model_fingerprint: dict[str, Any],
              transcriber_fingerprints: dict[str, dict[str, Any]] | None) -> str:
    return "infer-" + storage.stable_hash([
        model_fingerprint, transcriber_fingerprints or None, prompt.model_dump(mode="json")["messages"],
        shard.content_hash,
    ])


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
) -> dict[str, Any] | State:
    key = infer_key(shard, prompt, model_fingerprint, transcriber_fingerprints)
    entry = cache.entry_path(cache_dir, "infer", key)
    cached = None if fresh else cache.read_entry(entry, key)
    if cached is not None:
        return Completed(data=cached, name="Cached", message="shard result from the cache")
    answered_entry = cache.entry_path(cache_dir, "infer-answered", key)
    # ``fresh`` recomputes what earlier runs answered, but a retry keeps what this run's attempt got.
    kept = None if fresh and current_task_run.run_count <= 1 else cache.read_entry(answered_entry, key)
    answered = [ModelOutput.from_dict(row) for row in kept or []]
    asr = {lang: get_backend(m, generation_params(m)) for lang, m in (transcribers or {}).items()}
    try:
        with gpu_slot(model):
            result = infer_shard(shard, get_backend(model, generation), prompt, audio_dir, asr, answered)
    except ShardIncomplete as e:
        if e.answered:
            cache.write_entry(answered_entry, key, [o.to_dict() for o in e.answered])
        raise
    cache.write_entry(entry, key, result)
    return result
