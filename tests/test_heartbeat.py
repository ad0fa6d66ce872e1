"""Flow-run heartbeats (``flows.heartbeat``): sent by the body of a flow called here, once per run, and ended with it."""

from __future__ import annotations

import threading
import time
from typing import Any

from prefect import flow
from prefect.context import FlowRunContext
from prefect.settings import get_current_settings

from flows.heartbeat import HEARTBEAT, heartbeating
from flows.redacted import redacting_flow
from tests.processes import wait_for


def _settled_heartbeats(run_id: str) -> list[Any]:
    """The run's heartbeats once the first is stored and a few seconds more have passed (a second one would show)."""
    wait_for("the run's heartbeat in the API", lambda: _heartbeats(run_id), 30)
    time.sleep(3)
    return _heartbeats(run_id)


def _heartbeats(run_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    with get_client(sync_client=True) as client:
        page = client.read_events(EventFilter(event=EventNameFilter(name=[HEARTBEAT]),
                                              resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"])), limit=10)
    return page.events


def _probe_body(seen: dict[str, Any]) -> str:
    with heartbeating():
        seen["prefect_frequency"] = get_current_settings().flows.heartbeat_frequency
        seen["threads"] = [t.name for t in threading.enumerate()]
    return str(FlowRunContext.get().flow_run.id)


def test_a_flow_called_here_sends_its_heartbeat_from_its_body_and_ends_it(prefect_api):
    """Called in this process, one of our flows runs without Prefect's heartbeat thread (its setting is
    off in the run and back after it), its body's heartbeat thread runs and is gone when the call returns,
    and the API holds exactly one heartbeat of the run, naming its flow."""
    seen: dict[str, Any] = {}
    before = get_current_settings().flows.heartbeat_frequency

    @redacting_flow(name="heartbeat-probe", flow_run_name=lambda parameters: "probe")
    def probe() -> str:
        return _probe_body(seen)

    run_id = probe()

    assert before is not None and seen["prefect_frequency"] is None
    assert get_current_settings().flows.heartbeat_frequency == before
    assert "flow-run-heartbeat" in seen["threads"]
    assert not [t for t in threading.enumerate() if t.name == "flow-run-heartbeat"]
    events = _settled_heartbeats(run_id)
    assert len(events) == 1
    assert [r.id for r in events[0].related if r.role == "flow"] and events[0].resource.name == "probe"


def test_a_flow_run_by_prefects_engine_keeps_prefects_heartbeat_and_the_body_sends_none(prefect_api):
    """Where Prefect's engine runs the flow with its own heartbeats (a plain Prefect flow, as a deployment's
    run is), the body starts no heartbeat thread and the run still has exactly one heartbeat (Prefect's)."""
    seen: dict[str, Any] = {}

    @flow(name="heartbeat-probe-plain")
    def probe() -> str:
        return _probe_body(seen)

    run_id = probe()

    assert seen["prefect_frequency"] is not None
    assert "flow-run-heartbeat" not in seen["threads"]
    assert len(_settled_heartbeats(run_id)) == 1
