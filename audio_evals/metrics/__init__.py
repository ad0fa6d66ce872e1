"""Metrics: one module per metric, each exposing ``build(**params) -> Metric``.

``load_metric("wer")`` imports ``audio_evals.metrics.wer`` only after checking the name is one of
this package's metric modules, so a registry entry can never import anything else.
"""

from __future__ import annotations

from typing import Any, get_type_hints

from audio_evals.metrics.base import Metric
from audio_evals.plugins import UnknownName, available, load_plugin

_PACKAGE = "audio_evals.metrics"


def load_metric(name: str, **params: Any) -> Metric:
    """The metric ``name`` built with the task's ``metric_params``."""
    return load_plugin(_PACKAGE, name, "metric").build(**params)


def available_metrics() -> list[str]:
    """Names accepted by ``load_metric``."""
    return available(_PACKAGE)


def metric_reported_as(name: str) -> Metric:
    """The metric whose rows and summaries carry ``name`` (they record the metric's name, not its
    module: ``first_option`` reports ``acc``), built with its defaults.

    Enough to re-aggregate recorded stats, which no metric parameter changes. Raises UnknownName
    when no metric reports ``name``; a metric that cannot be built here (a judge without an
    endpoint) raises what its ``build`` raises.
    """
    for module in available_metrics():
        build = getattr(load_plugin(_PACKAGE, module, "metric"), "build", None)
        if build is not None and get_type_hints(build)["return"].name == name:
            return build()
    raise UnknownName(f"no metric reports as {name!r}")
