"""Flows whose run records never hold a secret: Prefect stores their parameters and names masked.

The function itself still receives the real values; only what reaches the Prefect API (flow-run
parameters, the run name) goes through ``audio_evals.redaction``. Called in this process, their
bodies send the flow run's heartbeats (``flows.heartbeat`` says why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Flow
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.states import State
from pydantic_core import PydanticSerializationError, to_jsonable_python

from audio_evals.redaction import redact, redact_text
from flows.heartbeat import heartbeats_from_body


def _jsonable(value: Any) -> Any:
    if isinstance(value, (PrefectFuture, State)):
        return f"<{type(value).__name__}>"  # never resolved to be stored
    try:
        return to_jsonable_python(value)
    except (PydanticSerializationError, TypeError, ValueError, RecursionError):
        return f"<{type(value).__name__}>"


class RedactingFlow(Flow):
    """A flow whose parameters are stored by Prefect with secrets masked."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The parameters as JSON values for the API, secrets masked.

        Prefect's own encoder imports FastAPI (a fifth of a second of every run) for what
        pydantic's encoder does alike for these flows' parameters (models, lists, dicts, plain
        values); what neither can encode is stored as a placeholder, as Prefect does.
        """
        return redact({key: _jsonable(value) for key, value in parameters.items()})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the flow here; its body (``flows.heartbeat.heartbeating``) sends the heartbeats, so the
        call returns as soon as the run ends, not on the next whole second of Prefect's heartbeat thread."""
        with heartbeats_from_body():
            return super().__call__(*args, **kwargs)

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
