"""download: materialise a dataset entry into a cached manifest."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from audio_evals import storage
from audio_evals.data import DatasetRef, materialise, source_fingerprint
from audio_evals.registry import DatasetEntry


def download_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Spec + limit + source content: a changed manifest or hub revision is a new key."""
    fingerprint = source_fingerprint(parameters["dataset"], parameters.get("limit"))
    return f"download-{storage.stable_hash([fingerprint, parameters['cache_dir']])}"


@task(name="download", cache_key_fn=download_key, persist_result=True, retries=2, retry_delay_seconds=[2, 10])
def download(dataset: DatasetEntry, cache_dir: str, limit: int | None = None) -> DatasetRef:
    ref = materialise(dataset, cache_dir, limit)
    if not storage.exists(ref.samples_path):
        raise FileNotFoundError(f"materialised manifest missing: {ref.samples_path}")
    return ref
