"""download: materialise a dataset entry into a cached manifest."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from audio_evals.data import DatasetRef, materialise
from audio_evals.registry import DatasetEntry


@task(name="download", cache_policy=NO_CACHE, persist_result=False)
def download(dataset: DatasetEntry, cache_dir: str, limit: int | None = None, fresh: bool = False) -> DatasetRef:
    """Reuse is decided by the library's cache, verified on every read, not by Prefect's.

    Not retried here: hub and store clients retry their own requests (audio_evals.hub retries the
    hub's 5xx), and a wrong column, a config or an unreachable hub is the same on every try."""
    return materialise(dataset, cache_dir, limit, fresh)
