"""Named post-processing steps applied to a model's reply before it is scored.

The reference tool's JSON-format prompts ("output the content with format {"content": ""}") are
followed by a step that reads the ``content`` field back out; scoring the raw reply instead
would count the JSON syntax as recognition errors. A task or prompt entry names its steps
(``post_process: [json_content]``); the raw reply stays in ``samples.jsonl`` as ``model_text``.
A step may return something other than text (the ``content`` of ``{"content": null}``); the score
stage then scores its ``str()``, as the reference's evaluators do.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Sequence
from typing import Any

from audio_evals.plugins import suggest


def _content_field(text: str) -> Any:
    """``text``'s ``content`` field as JSON, else as a Python literal; KeyError/ValueError if neither."""
    try:
        return json.loads(text)["content"]
    except (ValueError, TypeError, KeyError, IndexError):
        return ast.literal_eval(text)["content"]


def json_content(reply: Any) -> Any:
    """The ``content`` of a ``{"content": ...}`` reply: bare, ```json-fenced or single-quoted.

    As in the reference protocol, the content is returned as it parsed (``None``, a list, a number
    stay what they are), and a reply that is not such an object is kept, stripped (and without its
    fence, when it had one); a reply that is not text is returned unchanged.
    """
    if not isinstance(reply, str):
        return reply
    text = reply.strip()
    for fence in ("```json", "```"):
        if text.startswith(fence):
            text = text[len(fence):-3].strip()
            break
    try:
        return _content_field(text)
    except (ValueError, TypeError, KeyError, IndexError, SyntaxError, MemoryError, RecursionError):
        return text


STEPS: dict[str, Callable[[Any], Any]] = {"json_content": json_content}


def check(names: Sequence[str]) -> None:
    """Raise ValueError naming the unknown step (with near matches); used when a registry loads."""
    for name in names:
        if name not in STEPS:
            raise ValueError(f"unknown post-processing step {name!r}{suggest(name, list(STEPS))}")


def apply(names: Sequence[str], reply: str) -> Any:
    """``reply`` through each named step, in order (text, unless a step parsed something else)."""
    for name in names:
        reply = STEPS[name](reply)
    return reply
