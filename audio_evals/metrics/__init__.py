"""Metrics: one module per metric, each exposing ``build(**params) -> Metric``.

``load_metric("wer")`` imports ``audio_evals.metrics.wer`` only after checking the name is one of
this package's metric modules, so a registry entry can never import anything else.
"""

from __future__ import annotations

from typing import Any

from audio_evals.metrics.base import Metric
from audio_evals.plugins import available, load_plugin

_PACKAGE = "audio_evals.metrics"


def load_metric(name: str, **params: Any) -> Metric:
    """The metric ``name`` built with the task's ``metric_params``."""
    return load_plugin(_PACKAGE, name, "metric").build(**params)


def available_metrics() -> list[str]:
    """Names accepted by ``load_metric``."""
    return available(_PACKAGE)
