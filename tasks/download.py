"""The download stage task: a dataset entry into a cached manifest (``audio_evals.pipeline.download``)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from audio_evals.pipeline import download as stage
from audio_evals.records import DatasetRef
from audio_evals.registry import DatasetEntry


@task(name="download", cache_policy=NO_CACHE, persist_result=False)
def download(dataset: DatasetEntry, cache_dir: str, limit: int | None = None, fresh: bool = False) -> DatasetRef:
    """Reuse is decided by the library's cache, verified on every read, not by Prefect's.

    Not retried here: hub and store clients retry their own requests (audio_evals.hf_hub retries the
    hub's 5xx), and a wrong column, a config or an unreachable hub is the same on every try."""
    return stage.download(dataset, cache_dir, limit, fresh)
