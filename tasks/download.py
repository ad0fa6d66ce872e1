"""download: materialise a dataset entry into a cached manifest."""

from __future__ import annotations

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from audio_evals.data import DatasetRef, materialise
from audio_evals.data.hub import HubUnreachable
from audio_evals.registry import DatasetEntry

#: Failures a second attempt may not meet; a missing file, an unknown split or an offline hub recur.
RETRYABLE = (HubUnreachable, ConnectionError, TimeoutError)


def retry_unreachable(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry a source that did not answer; never an error that retrying cannot fix."""
    return isinstance(state.result(raise_on_failure=False), RETRYABLE)


@task(name="download", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=[2, 10],
      retry_condition_fn=retry_unreachable)
def download(dataset: DatasetEntry, cache_dir: str, limit: int | None = None, fresh: bool = False) -> DatasetRef:
    """Reuse is decided by the library's cache, verified on every read, not by Prefect's."""
    return materialise(dataset, cache_dir, limit, fresh)
