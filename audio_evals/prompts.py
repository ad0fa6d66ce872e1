"""Render a registry prompt for one sample.

Text parts are Jinja templates over the sample's fields (sandboxed: a template cannot reach
Python internals); audio parts become the path of the sample's prepared audio. The rendered text
is sent as it comes out of the template, never stripped or reformatted: the reference protocol's
prompts end in spaces and newlines the model sees, so they must reach it byte for byte (Jinja's
defaults, as the reference renders them: no trimming of blocks, a template's one final newline
dropped).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any

import jinja2
from jinja2.runtime import Namespace
from jinja2.sandbox import SandboxedEnvironment

from audio_evals.models.base import Content, Message
from audio_evals.records import PreparedSample
from audio_evals.registry.entries import PromptEntry

#: The most characters one rendered text part (or any value built on the way) may have.
MAX_OUTPUT_CHARS = 1 << 20
#: The most seconds one sample's rendering may take.
MAX_RENDER_S = 2.0
#: The largest integer power a template may compute, in bits.
MAX_POWER_BITS = 4096
_NUMBER = re.compile(r"\d+")


class PromptError(ValueError):
    """A template that cannot be rendered for a sample (e.g. a field the sample lacks)."""


class PromptLimit(jinja2.sandbox.SecurityError):
    """A template that would take too long or build too large a text: the sandbox blocks escapes, this blocks work."""


def _size(value: object) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple) else 0


def _check_size(value: object) -> object:
    if _size(value) > MAX_OUTPUT_CHARS:
        raise PromptLimit(f"it builds a value of {_size(value)} items, over the limit of {MAX_OUTPUT_CHARS}")
    return value


def _check_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse widths, counts and format specs that would build an oversized text before it is built."""
    for value in (*args, *kwargs.values()):
        numbers = [value] if isinstance(value, int) else map(int, _NUMBER.findall(value)) if isinstance(value, str) else []
        if any(n > MAX_OUTPUT_CHARS for n in numbers):
            raise PromptLimit(f"it asks for a size over the limit of {MAX_OUTPUT_CHARS}")


def _replaced_size(text: object, old: object, new: object) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    return len(text) + (len(text) + 1 if not old else text.count(old)) * (len(new) - len(old))


class _BoundedNamespace(Namespace):
    """``namespace()`` whose attributes cannot grow past the size limit (``{% set ns.s = ns.s ~ ns.s %}``)."""

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, _check_size(value))


class _BoundedEnvironment(SandboxedEnvironment):
    """The sandbox, with every operator, call and filter that can build a large value checked first."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and isinstance(left, int) != isinstance(right, int):
            count, value = (left, right) if isinstance(left, int) else (right, left)
            if count * _size(value) > MAX_OUTPUT_CHARS:
                raise PromptLimit(f"it builds a value of {count * _size(value)} items, over the limit of "
                                  f"{MAX_OUTPUT_CHARS}")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if right * max(1, abs(left).bit_length()) > MAX_POWER_BITS:
                raise PromptLimit(f"it computes a power of over {MAX_POWER_BITS} bits")
        elif operator == "+" and _size(left) + _size(right) > MAX_OUTPUT_CHARS:
            raise PromptLimit(f"it builds a value over the limit of {MAX_OUTPUT_CHARS}")
        elif operator == "%" and isinstance(left, str):
            _check_arguments((left,), {})
        return _check_size(super().call_binop(context, operator, left, right))

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _check_arguments(args, kwargs)
        if getattr(obj, "__name__", None) == "replace" and _replaced_size(getattr(obj, "__self__", None),
                                                                          *args[:2]) > MAX_OUTPUT_CHARS:
            raise PromptLimit(f"it replaces its way past the limit of {MAX_OUTPUT_CHARS}")
        return _check_size(super().call(context, obj, *args, **kwargs))


def _bounded_filter(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(f)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_arguments(args[1:], kwargs)
        if name == "replace" and _replaced_size(*[a for a in args if isinstance(a, str)][:3]) > MAX_OUTPUT_CHARS:
            raise PromptLimit(f"it replaces its way past the limit of {MAX_OUTPUT_CHARS}")
        return _check_size(f(*args, **kwargs))

    return bounded


_ENV = _BoundedEnvironment(undefined=jinja2.StrictUndefined)
_ENV.filters = {name: _bounded_filter(name, f) for name, f in _ENV.filters.items()}
_ENV.globals["namespace"] = _BoundedNamespace


@lru_cache(maxsize=256)
def _template(text: str) -> jinja2.Template:
    return _ENV.from_string(text)


def _render_bounded(template: jinja2.Template, context: dict[str, Any]) -> str:
    """The template's text, ``PromptLimit`` once it runs past ``MAX_RENDER_S`` or ``MAX_OUTPUT_CHARS``.

    The clock is checked on every line the compiled template runs (a trace on its frames only), so
    nested loops that output nothing are stopped too.
    """
    deadline = time.monotonic() + MAX_RENDER_S

    def on_line(frame: Any, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise PromptLimit(f"rendering took longer than {MAX_RENDER_S:g} s")
        return on_line

    def on_call(frame: Any, event: str, arg: Any) -> Any:
        return on_line if frame.f_code.co_filename == "<template>" else None

    parts, size = [], 0
    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        for part in template.generate(context):
            size += len(part)
            if size > MAX_OUTPUT_CHARS:
                raise PromptLimit(f"its text is over the limit of {MAX_OUTPUT_CHARS} characters")
            parts.append(part)
    finally:
        sys.settrace(previous)
    return "".join(parts)


def render(prompt: PromptEntry, prepared: PreparedSample) -> tuple[Message, ...]:
    sample = prepared.sample
    context = {**sample.fields, "id": sample.id, "lang": sample.lang}
    messages = []
    for message in prompt.messages:
        contents = []
        for part in message.contents:
            if part.type == "audio":
                contents.append(Content("audio", prepared.prepared))
                continue
            try:
                contents.append(Content("text", _render_bounded(_template(part.value), context)))
            except PromptLimit as e:
                raise PromptError(f"prompt {prompt.name!r} refused for sample {sample.id!r}: {e}") from None
            except jinja2.TemplateError as e:
                raise PromptError(f"prompt {prompt.name!r} cannot be rendered: {e}") from None
            except (RecursionError, MemoryError, ArithmeticError, TypeError, ValueError) as e:
                raise PromptError(f"prompt {prompt.name!r} cannot be rendered for sample {sample.id!r}: "
                                  f"{type(e).__name__}: {str(e)[:200]}") from None
        messages.append(Message(message.role, tuple(contents)))
    return tuple(messages)
