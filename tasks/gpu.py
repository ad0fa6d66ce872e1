"""The ``gpu`` global concurrency limit: GPU inference from any flow run on a machine takes a slot.

Several flow runs (a nightly suite, an evaluation triggered by a published model, a manual run)
may start at once; without a shared limit they would load models onto the same GPU and run out
of memory. ``deployments.serve`` creates the limit (``prefect gcl create gpu --limit 1``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound

from audio_evals.registry import ModelEntry

GPU_LIMIT = "gpu"


def needs_gpu(model: ModelEntry) -> bool:
    """Registry entries say what they need (``needs: "1 GPU (>= 24 GB)"``); CPU and API models do not."""
    return "GPU" in model.needs.upper()


@contextmanager
def gpu_slot(model: ModelEntry) -> Iterator[None]:
    """Hold one slot of the ``gpu`` limit while a GPU model runs; CPU models pass straight through.

    ``strict=False``: where the limit was never created (a laptop, a test) nothing waits.
    """
    if not needs_gpu(model):
        yield
        return
    with concurrency(GPU_LIMIT, occupy=1, strict=False):
        yield


def ensure_gpu_limit(slots: int = 1) -> None:
    """Create the ``gpu`` limit with ``slots`` slots, or set an existing one to ``slots``."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(GPU_LIMIT)
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=slots))
        else:
            client.update_global_concurrency_limit(GPU_LIMIT, GlobalConcurrencyLimitUpdate(limit=slots))
