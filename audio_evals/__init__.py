"""audio-evals: the evaluation library (registry, data, models, prompts, metrics, reports, storage).

This package never imports Prefect when imported: orchestration lives in ``tasks/`` and
``flows/``; ``evaluate`` (the Python API) imports the flow when called.
"""

__version__ = "0.1.0"

from audio_evals.api import compare, leaderboard, load_run  # noqa: E402
from audio_evals.main import evaluate  # noqa: E402

__all__ = ["compare", "evaluate", "leaderboard", "load_run"]
