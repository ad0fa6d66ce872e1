"""``watch-models``: poll model sources and emit ``audio_evals.model.published`` once per new revision.

The ``on-model-published`` deployment's trigger turns each event into an evaluation run.
Which revisions are new is decided by ``audio_evals.watch`` (state in the results store).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.events import emit_event

from audio_evals import watch


@flow(name="watch-models", validate_parameters=True)
def watch_models(config: str = watch.DEFAULT_CONFIG, output: str = "results") -> list[dict[str, Any]]:
    """One poll of every source in ``config``; state in ``<output>/watch-state.json``. Returns what was announced."""
    return watch.poll(watch.load_config(config), watch.state_path(output), emit_event, get_run_logger())
