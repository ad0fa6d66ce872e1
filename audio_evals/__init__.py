"""audio-evals: the evaluation library (registry, data, models, prompts, metrics, reports, storage).

This package never imports Prefect: orchestration lives in ``tasks/`` and ``flows/``.
"""

__version__ = "0.1.0"
