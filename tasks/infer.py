"""infer: run the model on one shard.

Cache key = model fingerprint (weights, settings, generation params) + prompt + shard content
hash, so a re-run recomputes only shards that failed or are new. Results are cached as JSON
entries in the cache folder (``audio_evals.cache``), never as Prefect's pickled results: a cached
shard finishes in the state "Cached". Transient errors are retried with backoff; a backend that
cannot run here is not retried.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import Completed, State

from audio_evals import cache, storage
from audio_evals.inference import run_shard
from audio_evals.models import generation_params, get_backend
from audio_evals.models.base import TransientBackendError
from audio_evals.redaction import install_log_redaction
from audio_evals.registry import ModelEntry, PromptEntry
from audio_evals.schema import ShardRef
from tasks.gpu import gpu_slot

install_log_redaction()  # also in Dask worker processes, which import this module to run shards

RETRYABLE = (TransientBackendError, ConnectionError, TimeoutError)
MAX_RETRY_AFTER_S = 600


def infer_key(shard: ShardRef, prompt: PromptEntry, model_fingerprint: dict[str, Any],
              transcriber_fingerprints: dict[str, dict[str, Any]] | None) -> str:
    return "infer-" + storage.stable_hash([
        model_fingerprint, transcriber_fingerprints or None, prompt.model_dump(mode="json")["messages"],
        shard.content_hash,
    ])


def retry_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry rate limits, server errors and timeouts; not missing GPUs, weights or bugs.

    A server's Retry-After hint (longer than the client would wait inside a call) is
    honoured here, before Prefect's own backoff delay.
    """
    try:
        state.result()
    except TransientBackendError as e:
        if e.retry_after:
            time.sleep(min(e.retry_after, MAX_RETRY_AFTER_S))
        return True
    except RETRYABLE:
        return True
    except Exception:
        return False
    return False


@task(
    name="infer",
    task_run_name="infer-shard-{shard.index}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=2,
    retry_delay_seconds=[2, 8],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_transient,
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
    asr = {lang: get_backend(m, generation_params(m)) for lang, m in (transcribers or {}).items()}
    with gpu_slot(model):
        result = run_shard(shard, get_backend(model, generation), prompt, audio_dir, asr)
    cache.write_entry(entry, key, result)
    return result
