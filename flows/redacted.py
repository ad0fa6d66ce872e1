"""Flows whose run records never hold a secret: Prefect stores their parameters and names masked.

The function itself still receives the real values; only what reaches the Prefect API (flow-run
parameters, the run name) goes through ``audio_evals.redaction``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Flow
from prefect.context import FlowRunContext

from audio_evals.redaction import redact, redact_text


class RedactingFlow(Flow):
    """A flow whose parameters are stored by Prefect with secrets masked."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return redact(super().serialize_parameters(parameters))

    def with_options(self, **options: Any) -> RedactingFlow:
        copy = super().with_options(**options)
        copy.__class__ = RedactingFlow  # Prefect builds a plain Flow
        return copy


def redacting_flow(*, flow_run_name: Callable[[dict[str, Any]], str],
                   **options: Any) -> Callable[[Callable[..., Any]], RedactingFlow]:
    """``@flow`` for flows whose parameters may hold secrets; the run name, made from the run's
    parameters by ``flow_run_name``, is masked too."""

    def run_name() -> str:
        context = FlowRunContext.get()
        return redact_text(flow_run_name(context.parameters if context else {}))

    return lambda fn: RedactingFlow(fn=fn, flow_run_name=run_name, **options)
