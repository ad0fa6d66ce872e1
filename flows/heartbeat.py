"""Flow-run heartbeats that stop the moment a flow's body ends.

Prefect 3.8 sends a flow run's heartbeats (``prefect.flow-run.heartbeat``, every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds) from a thread that sleeps in 1-s steps, and joins
that thread when the flow run ends: every run called in a process waited 0-1 s (0.5 s on average)
after its work was done and its final state set. The setting cannot turn them off (an int >= 30),
and they must stay on: they are how an automation notices a run whose process was killed.

So around a call of one of our flows in this process (``RedactingFlow.__call__``), Prefect's
heartbeat thread is off, and the flow's body sends the same events (``heartbeating``) from a
thread that waits on an event, so it ends at once. A flow run that Prefect's own engine starts (a
deployment's run, in a process of Prefect's runner) keeps Prefect's heartbeats, and its body sends
none.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import __version__ as prefect_version
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.events.related import tags_as_related_resources
from prefect.events.schemas.events import RelatedResource
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings

HEARTBEAT = "prefect.flow-run.heartbeat"
#: Seconds between the heartbeats of a flow body, where ``heartbeats_from_body`` took them over from Prefect.
_EVERY: contextvars.ContextVar[int | None] = contextvars.ContextVar("audio_evals_heartbeat_s", default=None)
_log = logging.getLogger(__name__)


@contextmanager
def heartbeats_from_body() -> Iterator[None]:
    """Around a flow call in this process: Prefect's heartbeat thread off, the body's on (same interval)."""
    every = get_current_settings().flows.heartbeat_frequency
    if every is None:  # already taken over by an enclosing call
        yield
        return
    token = _EVERY.set(every)
    try:
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield
    finally:
        _EVERY.reset(token)


def _event_of(context: FlowRunContext) -> tuple[dict[str, str], list[RelatedResource]]:
    """The heartbeat's resource and related resources, as Prefect's engine sends them."""
    run = context.flow_run
    resource = {"prefect.resource.id": f"prefect.flow-run.{run.id}", "prefect.resource.name": run.name or "",
                "prefect.version": prefect_version}
    related = [RelatedResource.model_validate({"prefect.resource.id": f"prefect.flow.{run.flow_id}",
                                               "prefect.resource.role": "flow",
                                               "prefect.resource.name": context.flow.name if context.flow else ""})]
    if run.deployment_id:
        related.append(RelatedResource.model_validate({"prefect.resource.id": f"prefect.deployment.{run.deployment_id}",
                                                       "prefect.resource.role": "deployment"}))
    return resource, related + tags_as_related_resources(set(run.tags or []))


@contextmanager
def heartbeating() -> Iterator[None]:
    """In a flow's body: send its flow run's heartbeats while the body runs, where ``heartbeats_from_body``
    took them over from Prefect (the first at once, as Prefect's engine does); otherwise nothing."""
    every, context = _EVERY.get(), FlowRunContext.get()
    if every is None or context is None or context.flow_run is None:
        yield
        return
    resource, related = _event_of(context)
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                emit_event(event=HEARTBEAT, resource=resource, related=related)
            except Exception:  # a lost heartbeat must not fail the run; the next one is sent
                _log.debug("flow-run heartbeat not sent", exc_info=True)
            if stop.wait(every):
                return

    # The thread sees this context's settings (the API URL), as Prefect's heartbeat thread does.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(beat,), name="flow-run-heartbeat",
                              daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
