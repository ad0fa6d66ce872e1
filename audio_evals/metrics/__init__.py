"""Metrics: one module per metric, each exposing ``NAME`` (what it reports) and ``build(**params) -> Metric``.

``load_metric("wer")`` imports ``audio_evals.metrics.wer`` only after checking the name is one of
this package's metric modules, so a registry entry can never import anything else. A module's
``NAME`` is read from its source without importing it.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
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


def metric_class(name: str) -> type[Metric]:
    """The class the metric module ``name`` builds (its attributes, without building it: a judge
    needs an endpoint to be built)."""
    return get_type_hints(load_plugin(_PACKAGE, name, "metric").build)["return"]


def _reported_name(module: str) -> str | None:
    """The ``NAME`` constant of a metric module, read from its source."""
    origin = importlib.util.find_spec(f"{_PACKAGE}.{module}").origin
    with open(origin, encoding="utf-8") as f:
        for node in ast.parse(f.read()).body:
            if (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["NAME"]
                    and isinstance(node.value, ast.Constant)):
                return node.value.value
    return None


@functools.cache
def reported_names() -> dict[str, tuple[str, ...]]:
    """Reported name -> the metric modules reporting it, in name order.

    ``acc`` is reported by the has-answer and the first-option metric alike, as the seed reports
    name both; both are accuracies, so either re-aggregates the other's recorded stats.
    """
    names: dict[str, tuple[str, ...]] = {}
    for module in available_metrics():
        reported = _reported_name(module)
        if reported:
            names[reported] = (*names.get(reported, ()), module)
    return names


def metric_reported_as(name: str) -> Metric:
    """The metric whose rows and summaries carry ``name``, built with its defaults.

    Enough to re-aggregate recorded stats, which no metric parameter changes. Raises UnknownName
    when no metric reports ``name``; a metric that cannot be built here (a judge without an
    endpoint) raises what its ``build`` raises.
    """
    modules = reported_names().get(name)
    if not modules:
        raise UnknownName(f"no metric reports as {name!r}")
    return load_metric(modules[0])
