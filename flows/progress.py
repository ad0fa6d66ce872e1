"""Shard-progress listeners: the CLI's progress bar subscribes; the flow publishes.

Listeners are process-local callables, so they never become flow parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Listener = Callable[[str, dict[str, Any]], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Add a listener; returns a function that removes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def publish(event: str, payload: dict[str, Any]) -> None:
    """``event`` is ``start`` (total shards), ``shard`` (one finished) or ``end``."""
    for listener in list(_listeners):
        listener(event, payload)
